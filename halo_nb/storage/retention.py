"""Which traces retention drops: live-ingested traces none of whose spans arrived within
the retention period.

Ageing by arrival, not by the spans' own start times, keeps every span the store has just
acknowledged: a span with start time 0 (unset), a 40-day-old span sent today, a replayed
old trace. Imported snapshots (spans with an origin) are never dropped."""

from __future__ import annotations

import polars as pl

from .chunks import Chunk


def expired_traces(chunks: list[Chunk], cutoff_ns: int) -> list[str]:
    """Trace ids whose spans are all live-ingested and whose newest arrival in
    ``chunks`` is before ``cutoff_ns``."""
    if not chunks:
        return []
    per_chunk = [
        chunk.frame.group_by("trace_id").agg(live=pl.col("origin").is_null().all())
        .with_columns(arrived_ns=pl.lit(chunk.arrived_ns, dtype=pl.Int64))
        for chunk in chunks if chunk.frame.height
    ]
    if not per_chunk:
        return []
    traces = (pl.concat(per_chunk).group_by("trace_id")
              .agg(pl.col("arrived_ns").max(), pl.col("live").all()))
    return traces.filter(pl.col("live") & (pl.col("arrived_ns") < cutoff_ns))["trace_id"].to_list()
