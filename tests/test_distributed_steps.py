"""The pieces of the distributed analysis that need no cluster (fast tier): sources, the
bucket files of the shuffle, the engine's map and reduce over partitions, the API's
checks, and that the default path never imports the distributed engine."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from split_corpus import SplitCorpus, write_split_corpus

import halo_nb
from halo_nb.config import Settings
from halo_nb.distributed.buckets import bucket_of, read_buckets, write_buckets
from halo_nb.rlm import analyze_frame
from halo_nb.rlm.engine import latest_time, map_traces, reduce_traces
from halo_nb.rlm.prepare import (
    CorpusStats,
    empty_by_design_tools,
    outlier_table,
    outlier_values,
    prepare_rows,
    tool_usage,
    with_corpus_stats,
)
from halo_nb.sources import PARQUET, SNAPSHOT, expand_sources, read_sources

# Reading a snapshot loads the process settings: each test starts and ends fresh.
pytestmark = pytest.mark.usefixtures("halo_runtime")

RESULT_FRAMES = ("findings", "clusters", "hypotheses", "assignments", "blame")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> SplitCorpus:
    return write_split_corpus(tmp_path_factory.mktemp("team"), traces=160)


def test_sources_expand_folders_globs_and_snapshots_in_order(corpus: SplitCorpus) -> None:
    store_a, store_b, snapshot = corpus.sources
    pieces = expand_sources(corpus.sources)
    parts_a = sorted(str(p) for p in Path(store_a).glob("part-*.parquet"))
    assert [p.path for p in pieces[:len(parts_a)]] == parts_a
    assert pieces[-1].path == snapshot and pieces[-1].kind == SNAPSHOT
    assert {p.kind for p in pieces[:-1]} == {PARQUET}
    by_glob = expand_sources([str(Path(store_a).parent / "[ab]"), snapshot, store_a])
    assert by_glob == pieces  # a piece named twice is read once
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        expand_sources([str(Path(store_a).parent / "nothing-here")])


def test_sources_read_every_span_with_the_stores_types(corpus: SplitCorpus) -> None:
    frame = read_sources(corpus.sources)
    assert frame.schema == pl.Schema(halo_nb.schema.SPAN_SCHEMA)
    assert frame.unique(["trace_id", "span_id"]).height == corpus.spans
    some = corpus.split_trace_ids[:3]
    only = read_sources(corpus.sources, ["trace_id", "span_id"], some)
    assert only.columns == ["trace_id", "span_id"]
    assert set(only["trace_id"].unique()) == set(some)


def test_bucket_files_keep_each_row_once_in_its_order(tmp_path: Path) -> None:
    frame = pl.DataFrame({"trace_id": [f"t{i % 7}" for i in range(60)], "n": range(60)})
    index = write_buckets(frame, bucket_of(pl.col("trace_id"), 4), tmp_path / "x.arrow")
    parts = [read_buckets([(str(tmp_path / "x.arrow"), batches)]) for batches in index.values()]
    assert sum(p.height for p in parts) == 60
    for part in parts:
        assert part["n"].is_sorted()  # the order within a bucket is kept
        for trace in part["trace_id"].unique():  # a trace is whole in one bucket
            assert part.filter(pl.col("trace_id") == trace).height == frame.filter(
                pl.col("trace_id") == trace).height
    assert read_buckets([]) is None


def test_map_over_trace_partitions_and_reduce_equal_one_pass(corpus: SplitCorpus) -> None:
    """What the cluster runs, in one process: partitions of whole traces, each prepared
    with the statistics of the whole corpus, mapped, then reduced."""
    settings = Settings(model="none")
    spans = read_sources(corpus.sources)
    expected = analyze_frame(spans, settings, outcomes={corpus.split_trace_ids[0]: "failed"})
    partitions = [prepare_rows(part) for part in spans.with_columns(
        bucket_of(pl.col("trace_id"), 3).alias("b")).partition_by("b", include_key=False)]
    samples = [outlier_values(rows) for rows in partitions]
    stats = CorpusStats(empty_by_design_tools([tool_usage(rows) for rows in partitions]),
                        outlier_table(pl.concat([lat for lat, _ in samples]), "lat"),
                        outlier_table(pl.concat([tok for _, tok in samples]), "tok"))
    end = max(latest_time(rows) for rows in partitions)
    partials = [map_traces(with_corpus_stats(rows, stats), settings,
                           {corpus.split_trace_ids[0]: "failed"}, end) for rows in partitions]
    got = reduce_traces(partials, settings, {}, 0.0)
    assert len(partitions) == 3 and expected.trace_count == got.trace_count == 160
    for name in RESULT_FRAMES:
        assert_frame_equal(getattr(got, name), getattr(expected, name), check_exact=True)
    assert expected.findings.filter(pl.col("detector") == "latency_outlier").height > 0
    assert empty_by_design_tools([]) == []  # a corpus with no spans (a filter kept none)


def test_analyze_checks_engine_and_its_options(corpus: SplitCorpus) -> None:
    with pytest.raises(ValueError, match="not one of local, dask"):
        halo_nb.analyze(source=corpus.sources, engine="spark")
    with pytest.raises(ValueError, match="engine='dask' reads sources"):
        halo_nb.analyze(engine="dask")
    with pytest.raises(ValueError, match="address, workers and scratch are for engine="):
        halo_nb.analyze(source=corpus.sources, address="tcp://127.0.0.1:8786")


def test_default_path_never_imports_the_distributed_engine(corpus: SplitCorpus,
                                                           tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import json, sys
        import halo_nb
        from halo_nb.sources import read_sources
        halo_nb.configure(persist=False, model="none")
        halo_nb.store().append(read_sources({corpus.sources!r}))
        in_kernel = halo_nb.analyze()
        from_sources = halo_nb.analyze(source={corpus.sources!r})
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in
                        ("dask", "distributed", "fsspec", "ray")
                        or m.startswith("halo_nb.distributed"))
        print(json.dumps([in_kernel.trace_count, from_sources.trace_count, loaded]))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True, timeout=120)
    in_kernel, from_sources, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert in_kernel == from_sources == 160
    assert loaded == []
