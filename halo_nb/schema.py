"""The span frame: the column contract every part of halo_nb reads and writes.

See docs/architecture.md ("The span frame"). Columns may be added; none renamed.
"""

from __future__ import annotations

import polars as pl

KINDS = (
    "agent",
    "chain",
    "llm",
    "tool",
    "retriever",
    "embedding",
    "reranker",
    "guardrail",
    "evaluator",
    "unknown",
)
STATUSES = ("unset", "ok", "error")

KIND = pl.Enum(KINDS)
STATUS = pl.Enum(STATUSES)

SPAN_SCHEMA: dict[str, pl.DataType] = {
    "trace_id": pl.String(),
    "span_id": pl.String(),
    "parent_span_id": pl.String(),
    "name": pl.String(),
    "kind": KIND,
    "start_ns": pl.Int64(),
    "end_ns": pl.Int64(),
    "duration_ms": pl.Float64(),
    "status": STATUS,
    "status_message": pl.String(),
    "service": pl.String(),
    "model": pl.String(),
    "tokens_in": pl.Int64(),
    "tokens_out": pl.Int64(),
    "tokens_total": pl.Int64(),
    "tool_name": pl.String(),
    "tool_args": pl.String(),
    "tool_result": pl.String(),
    "input": pl.String(),
    "output": pl.String(),
    "finish_reason": pl.String(),
    # JSON object of every span attribute, lossless.
    "attributes": pl.String(),
    # JSON list of {"name", "time_ns", "attributes"}.
    "events": pl.String(),
    # JSON list of {"trace_id", "span_id", "trace_state", "attributes"}: OTLP span links
    # (a hand-off to work in another trace, a batch's inputs).
    "links": pl.String(),
    # What OTLP carries beside the attributes, kept so a snapshot re-exports it.
    "otel_kind": pl.String(),
    "trace_state": pl.String(),
    "scope_name": pl.String(),
    "scope_version": pl.String(),
    "resource": pl.String(),
    # Where the span came from: null for live ingest, the file name for a snapshot import.
    "origin": pl.String(),
}

SPAN_COLUMNS = tuple(SPAN_SCHEMA)


def empty_spans() -> pl.DataFrame:
    """An empty span frame with the full schema."""
    return pl.DataFrame(schema=SPAN_SCHEMA)
