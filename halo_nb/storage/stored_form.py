"""The form spans take inside the store: exactly the SPAN_SCHEMA columns, with
low-cardinality text held as Categorical (4 bytes a row instead of a 16-byte string view
plus the text: span name, service, model, tool name, OTel kind, scope, the resource JSON
repeated on every span of a process...), cast back to String on the way out."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from ..ingest.span_batch import SpanBatch, frame_of
from ..schema import SPAN_SCHEMA

CATEGORICAL_COLUMNS = ("name", "service", "model", "tool_name", "finish_reason", "otel_kind",
                       "trace_state", "scope_name", "scope_version", "resource", "origin")
STORED_SCHEMA: dict[str, pl.DataType] = {
    name: pl.Categorical() if name in CATEGORICAL_COLUMNS else dtype
    for name, dtype in SPAN_SCHEMA.items()
}
ID_COLUMNS = ["trace_id", "span_id"]
ID_PAIR = pl.struct(ID_COLUMNS)
_STORED_ITEMS = list(STORED_SCHEMA.items())
_SPAN_ITEMS = list(SPAN_SCHEMA.items())


def span_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with exactly the SPAN_SCHEMA columns, in order (missing ones null)."""
    if list(frame.schema.items()) == _SPAN_ITEMS:
        return frame
    return _select_schema(frame, SPAN_SCHEMA)


def stored_form(batches: list[SpanBatch]) -> pl.DataFrame:
    """Appended batches as one stored chunk: imported, copied into one chunk and cast
    here, once for everything appended since the last flush (each of those costs about
    half a millisecond a call whatever the size)."""
    return conform(frame_of(batches).rechunk())


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame in the store's form: exactly the SPAN_SCHEMA columns, in order (missing
    ones null), low-cardinality text as Categorical."""
    items = list(frame.schema.items())
    if items == _STORED_ITEMS:
        return frame
    if items == _SPAN_ITEMS:  # what every decoder builds: one cast, no per-column plan
        return frame.with_columns(pl.col(CATEGORICAL_COLUMNS).cast(pl.Categorical()))
    return _select_schema(frame, STORED_SCHEMA)


def expand(frame: pl.DataFrame) -> pl.DataFrame:
    """A stored frame as SPAN_SCHEMA says (a new frame: safe to keep or mutate)."""
    return frame.with_columns(pl.col(CATEGORICAL_COLUMNS).cast(pl.String))


def batch_bytes(batch: SpanBatch) -> int:
    """Memory a pending batch holds (its Arrow buffers, or the frame's estimate)."""
    spans = batch.spans
    return spans.nbytes if isinstance(spans, pa.Table) else int(spans.estimated_size())


def _select_schema(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Exactly ``schema``'s columns, in its order and types (missing ones null)."""
    return frame.select(
        (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in schema.items()
    )
