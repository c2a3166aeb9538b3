"""Storage: the span store (in-memory chunks, Parquet parts on disk, retention) and the
per-trace summaries behind the trace list."""

from .store import SpanStore, UnknownTraceError

__all__ = ["SpanStore", "UnknownTraceError"]
