"""What the workers run: plain functions of picklable values, one per stage.

1. split_piece: read one source piece (the columns the engine reads) and write it to
   scratch by trace bucket (the shuffle by trace id).
2. sample_partition: one trace bucket, its spans now whole traces, prepared per row
   (prepare_rows); returns what the corpus statistics need from it, and writes the
   latency and token samples to scratch by label bucket, one list of values per label
   (8 bytes a sample).
3. outlier_partition: one label bucket, its labels whole: the exact median / MAD tables,
   one label at a time.
4. analyze_partition: one trace bucket prepared with the whole corpus' statistics and
   mapped trace by trace (engine.map_traces).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ..config import Settings
from ..rlm.engine import TracePartial, latest_time, map_traces, paused_gc
from ..rlm.prepare import (
    NEEDED,
    CorpusStats,
    outlier_table,
    outlier_values,
    prepare_rows,
    tool_usage,
    with_corpus_stats,
)
from ..sources import SourcePiece, read_piece
from .buckets import BucketInput, bucket_of, read_buckets, write_buckets

LATENCY, TOKENS = "lat", "tok"


@dataclass(frozen=True)
class Split:
    """Where one piece's rows went: its scratch file and each bucket's record batches."""

    path: str
    batches: dict[int, list[int]]


@dataclass(frozen=True)
class Sample:
    """What one trace bucket gives the corpus statistics."""

    tool_usage: pl.DataFrame
    latest_ns: int | None
    samples: Split  # latency and token samples by label bucket


def split_piece(piece: SourcePiece, index: int, buckets: int, scratch: str,
                trace_ids: Sequence[str] | None) -> Split:
    frame = read_piece(piece, NEEDED, trace_ids)
    path = Path(scratch) / "traces" / f"{index:06d}.arrow"
    written = write_buckets(frame, bucket_of(pl.col("trace_id"), buckets), path)
    return Split(str(path), written)


def sample_partition(inputs: Sequence[BucketInput], index: int, label_buckets: int,
                     scratch: str) -> Sample:
    rows = _rows(inputs)
    latency, tokens = outlier_values(rows)
    samples = (pl.concat([latency.with_columns(pl.lit(LATENCY).alias("stat")),
                          tokens.with_columns(pl.lit(TOKENS).alias("stat"))])
               .group_by("stat", "group", maintain_order=True).agg(pl.col("value")))
    path = Path(scratch) / "samples" / f"{index:06d}.arrow"
    written = write_buckets(samples, bucket_of(pl.col("group"), label_buckets), path)
    return Sample(tool_usage(rows), latest_time(rows), Split(str(path), written))


def outlier_partition(inputs: Sequence[BucketInput]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(latency table, token table) of the labels of one label bucket."""
    samples = read_buckets(inputs)
    assert samples is not None, "a label bucket is only scheduled when it has samples"
    tables: dict[str, list[pl.DataFrame]] = {LATENCY: [], TOKENS: []}
    for (stat, group), lists in samples.partition_by("stat", "group", as_dict=True).items():
        values = lists.select(pl.col("value").explode())
        labelled = values.with_columns(pl.lit(group, dtype=pl.String).alias("group"))
        tables[stat].append(outlier_table(labelled, stat))
    return stacked(tables[LATENCY], LATENCY), stacked(tables[TOKENS], TOKENS)


def stacked(tables: Sequence[pl.DataFrame], stat: str) -> pl.DataFrame:
    """Outlier tables of disjoint labels as one (an empty table when there are none)."""
    if not tables:
        return outlier_table(pl.DataFrame(schema={"group": pl.String, "value": pl.Float64}),
                             stat)
    return pl.concat(tables)


def analyze_partition(inputs: Sequence[BucketInput], stats: CorpusStats, settings: Settings,
                      given: Mapping[str, str], corpus_end: int | None) -> TracePartial:
    with paused_gc():
        prepared = with_corpus_stats(_rows(inputs), stats)
        return map_traces(prepared, settings, given, corpus_end)


def _rows(inputs: Sequence[BucketInput]) -> pl.DataFrame:
    frame = read_buckets(inputs)
    assert frame is not None, "a trace bucket is only scheduled when it has spans"
    return prepare_rows(frame)
