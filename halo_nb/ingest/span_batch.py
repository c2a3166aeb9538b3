"""SpanBatch: spans on their way into the store, with the ids its duplicate check reads.

The collector appends a batch for each request while exporters keep sending, so an
append must not cost a Polars call: importing a table into Polars costs a fixed ~0.5 ms
and, with concurrent request threads, dozens of GIL and thread-pool hand-offs a call.
A batch therefore carries its duplicate keys and trace ids as plain Python values (the
native decoder computes them while it decodes), and its spans as the native decoder's
Arrow table, which the store imports together with every other table appended since its
last flush (``frame_of``), in one call.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from ..schema import SPAN_SCHEMA


@dataclass(eq=False)
class SpanBatch:
    """``spans``: a frame with the SPAN_SCHEMA columns, or an Arrow table that imports as
    one. ``keys``: each span's duplicate key (``span_keys``), in row order. ``trace_ids``:
    the distinct trace ids, in first-seen order; ``row_traces``: each span's position in
    ``trace_ids``."""

    spans: pl.DataFrame | pa.Table
    keys: list[int]
    trace_ids: list[str]
    row_traces: list[int]

    @classmethod
    def of_frame(cls, frame: pl.DataFrame) -> SpanBatch:
        positions: dict[str, int] = {}
        row_traces = [positions.setdefault(t, len(positions)) for t in frame["trace_id"]]
        return cls(frame, span_keys(frame).to_list(), list(positions), row_traces)

    @property
    def rows(self) -> int:
        return len(self.keys)


def span_keys(frame: pl.DataFrame) -> pl.Series:
    """The duplicate key of each span: its span id as an unsigned 64-bit integer. Span ids
    are random 64-bit values, so the id itself is as selective as any hash of it; a key
    hit is confirmed on both ids. An id that is not 16 hex digits (no decoder makes one)
    is hashed instead."""
    ids = frame["span_id"]
    keys = ids.str.to_integer(base=16, dtype=pl.UInt64, strict=False)
    if keys.null_count() > ids.null_count():
        keys = keys.fill_null(ids.hash(seed=0x4A10))
    return keys


def frame_of(batches: list[SpanBatch]) -> pl.DataFrame:
    """The spans of several batches as one frame, in batch order, without copying.
    Consecutive Arrow tables are imported in one call (a chunk per table), column by
    column: each column holds only its own buffers (a record batch imported whole would
    keep every column's memory alive for as long as any one of them is referenced, e.g.
    the text columns a stored chunk shares)."""
    if not batches:
        raise ValueError("no batches")
    frames = []
    for is_table, run in itertools.groupby(batches, lambda b: isinstance(b.spans, pa.Table)):
        spans = [b.spans for b in run]
        frames.extend([_imported(spans)] if is_table else spans)
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical", rechunk=False)


def _imported(tables: list[pa.Table]) -> pl.DataFrame:
    frame = pl.from_arrow(pa.concat_tables(tables) if len(tables) > 1 else tables[0],
                          rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    return frame if frame.schema == SPAN_SCHEMA else frame.cast(SPAN_SCHEMA)
