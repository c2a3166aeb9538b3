"""What the workers run: plain functions of picklable values, one per stage.

1. split_piece: read one source piece (the columns the engine reads) and write it to
   scratch by trace bucket (the shuffle by trace id).
2. sample_partition: one trace bucket, its spans now whole traces, prepared per row
   (prepare_rows); returns what the corpus statistics need from it, and writes its
   latency and token samples to scratch as a sample file, one list of values per label
   (8 bytes a sample).
3. selection.scan_samples: one pass of the exact median / MAD selection over a shard of
   the sample files (selection.py).
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
    outlier_values,
    prepare_rows,
    tool_usage,
    with_corpus_stats,
)
from ..sources import SourcePiece, read_piece
from .buckets import BucketInput, bucket_of, read_buckets, write_buckets
from .selection import LATENCY, TOKENS, Label, write_samples


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
    samples: str  # the sample file: latency and token samples per label
    counts: dict[Label, int]  # samples per label


def split_piece(piece: SourcePiece, index: int, buckets: int, scratch: str,
                trace_ids: Sequence[str] | None) -> Split:
    frame = read_piece(piece, NEEDED, trace_ids)
    path = Path(scratch) / "traces" / f"{index:06d}.arrow"
    written = write_buckets(frame, bucket_of(pl.col("trace_id"), buckets), path)
    return Split(str(path), written)


def sample_partition(inputs: Sequence[BucketInput], index: int, scratch: str) -> Sample:
    rows = _rows(inputs)
    latency, tokens = outlier_values(rows)
    samples = (pl.concat([latency.with_columns(pl.lit(LATENCY).alias("stat")),
                          tokens.with_columns(pl.lit(TOKENS).alias("stat"))])
               .group_by("stat", "group", maintain_order=True).agg(pl.col("value")))
    path = Path(scratch) / "samples" / f"{index:06d}.arrow"
    write_samples(samples, path)
    counts = samples.select("stat", "group", pl.col("value").list.len()).iter_rows()
    return Sample(tool_usage(rows), latest_time(rows), str(path),
                  {(stat, group): n for stat, group, n in counts})


def analyze_partition(inputs: Sequence[BucketInput], stats: CorpusStats, settings: Settings,
                      given: Mapping[str, str], corpus_end: int | None) -> TracePartial:
    with paused_gc():
        prepared = with_corpus_stats(_rows(inputs), stats)
        return map_traces(prepared, settings, given, corpus_end)


def _rows(inputs: Sequence[BucketInput]) -> pl.DataFrame:
    frame = read_buckets(inputs)
    assert frame is not None, "a trace bucket is only scheduled when it has spans"
    return prepare_rows(frame)
