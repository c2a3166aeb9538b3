"""analyze_sources: the analysis of a corpus of many stores and snapshots on a Dask
cluster, with the same AnalysisResult as ``analyze_frame`` over the same spans.

Stages (tasks.py runs each on the workers; only small values come back here):

    pieces ──split_piece──► scratch by trace bucket        (the shuffle by trace id)
    trace buckets ──sample_partition──► tool usage, latest time, a sample file each
    sample files ──scan_samples──► counts ──► … (passes) exact median / MAD ┐ CorpusStats,
    driver: merge tool usage → tools empty by design                        ┘ broadcast
    trace buckets ──analyze_partition──► TracePartial (findings, outcome, blame per trace)
    driver: engine.reduce_traces — clusters, prevalence, lift, hypotheses, narratives

A worker holds one piece or one bucket at a time: the bucket count follows the corpus'
span count (``partition_spans`` per bucket), and the statistics read the sample files one
at a time (selection.py), so memory per worker stays bounded whatever the corpus size.
Spans whose (trace id, span id) repeats keep the first copy in source order, as when the
sources are read into one frame.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..config import Settings
from ..rlm.engine import TracePartial, reduce_traces
from ..rlm.prepare import CorpusStats, empty_by_design_tools
from ..rlm.result import AnalysisResult
from ..sources import SourceLike, expand_sources
from .buckets import BucketInput
from .cluster import dask_client, worker_count
from .selection import LATENCY, TOKENS, Label, Queries, outlier_tables, scan_samples
from .tasks import analyze_partition, sample_partition, split_piece

# Spans per trace bucket: a few hundred MB at the peak of a worker's task.
PARTITION_SPANS = 50_000


def analyze_sources(source: SourceLike, settings: Settings, *,
                    outcomes: Mapping[str, str] | None = None,
                    trace_ids: Sequence[str] | None = None, address: str | None = None,
                    workers: int | None = None, scratch: str | Path | None = None,
                    partition_spans: int = PARTITION_SPANS,
                    partitions: int | None = None) -> AnalysisResult:
    """Analyse every span of ``source`` (storage folders, Parquet parts, snapshot files,
    globs or fsspec URLs; see halo_nb.sources) on the Dask scheduler at ``address``, or
    on a local cluster of ``workers`` processes. ``scratch`` is a folder every worker can
    read and write (default: a temporary folder, right for a local cluster); the shuffle
    files go into a folder of their own in it, removed at the end. ``partitions`` fixes
    the number of trace buckets (default: from the spans the pieces hold)."""
    started = time.perf_counter()
    pieces = expand_sources(source)
    given = dict(outcomes or {})
    timings: dict[str, float] = {}
    with dask_client(address, workers) as client, _scratch(scratch) as folder:
        timings["cluster_s"] = time.perf_counter() - started
        slots = worker_count(client)
        spans = sum(piece.span_estimate() for piece in pieces)
        buckets = partitions or max(2 * slots, math.ceil(spans / partition_spans))

        tick = time.perf_counter()
        ids = list(trace_ids) if trace_ids is not None else None
        splits = client.gather(client.map(split_piece, pieces, range(len(pieces)),
                                          buckets=buckets, scratch=folder, trace_ids=ids,
                                          pure=False))
        trace_inputs = _bucket_inputs(splits, buckets)
        timings["shuffle_s"] = time.perf_counter() - tick

        tick = time.perf_counter()
        samples = client.gather(client.map(sample_partition, trace_inputs,
                                           range(len(trace_inputs)), scratch=folder,
                                           pure=False))
        counts: dict[Label, int] = {}
        for sample in samples:
            for label, n in sample.counts.items():
                counts[label] = counts.get(label, 0) + n
        files = [sample.samples for sample in samples]
        shards = [files[i::2 * slots] for i in range(min(len(files), 2 * slots))]

        def scan(queries: Queries) -> list[Any]:
            return client.gather(client.map(scan_samples, shards, queries=queries, pure=False))

        tables = outlier_tables(counts, scan)
        stats = CorpusStats(empty_by_design_tools([s.tool_usage for s in samples]),
                            tables[LATENCY], tables[TOKENS])
        ends = [s.latest_ns for s in samples if s.latest_ns is not None]
        corpus_end = max(ends) if ends else None
        timings["statistics_s"] = time.perf_counter() - tick

        tick = time.perf_counter()
        [stats_ref, given_ref, settings_ref] = client.scatter([stats, given, settings],
                                                              broadcast=True)
        futures = client.map(analyze_partition, trace_inputs, stats=stats_ref,
                             settings=settings_ref, given=given_ref, corpus_end=corpus_end,
                             pure=False)
        result = reduce_traces(_as_completed(futures), settings, timings, started)
        timings["map_s"] = (time.perf_counter() - tick - timings["correlate_s"]
                            - timings["model_s"])
    timings["total_s"] = time.perf_counter() - started
    return result


def _bucket_inputs(splits: Sequence[Any], buckets: int) -> list[list[BucketInput]]:
    """Each non-empty bucket's (file, batches) across the splits, in split (= source)
    order; empty buckets are dropped."""
    inputs: list[list[BucketInput]] = [[] for _ in range(buckets)]
    for split in splits:
        for bucket, batches in split.batches.items():
            inputs[bucket].append((split.path, batches))
    return [found for found in inputs if found]


def _as_completed(futures: list[Any]) -> Iterator[TracePartial]:
    """Each partial as its task finishes, released on the cluster once here."""
    from dask.distributed import as_completed

    for future in as_completed(futures):
        partial = future.result()
        future.release()
        yield partial


@contextmanager
def _scratch(scratch: str | Path | None) -> Iterator[str]:
    """A new folder for this run's shuffle files (in ``scratch`` when given), removed
    afterwards."""
    if scratch is not None:
        Path(scratch).mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="halo-shuffle-", dir=scratch)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
