"""Storage: the span store (in-memory chunks, Parquet parts on disk, retention) and the
per-trace summaries behind the trace list."""

from .errors import StoreFull, StoreUnavailable, StoreWriteFailed, UnknownTraceError
from .store import SpanStore

__all__ = ["SpanStore", "StoreFull", "StoreUnavailable", "StoreWriteFailed",
           "UnknownTraceError"]
