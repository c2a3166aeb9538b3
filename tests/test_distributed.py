"""The distributed analysis on a real local Dask cluster of two worker processes: the
same result as the single-process analysis of the same corpus, whose traces are spread
over two stores (some split between them) and a snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from split_corpus import SplitCorpus, write_split_corpus

import halo_nb
from halo_nb.config import Settings
from halo_nb.distributed import analyze_sources
from halo_nb.sources import expand_sources, read_sources

# Reading a snapshot loads the process settings: each test starts and ends fresh.
pytestmark = [pytest.mark.distributed, pytest.mark.usefixtures("halo_runtime")]

RESULT_FRAMES = ("findings", "clusters", "hypotheses", "assignments", "blame")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> SplitCorpus:
    return write_split_corpus(tmp_path_factory.mktemp("team"), traces=400)


def test_two_workers_give_the_single_process_result(corpus: SplitCorpus,
                                                    tmp_path: Path) -> None:
    told = {corpus.split_trace_ids[1]: "failed", corpus.split_trace_ids[2]: "succeeded"}
    single = halo_nb.analyze(source=corpus.sources, outcomes=told, model="none")
    scratch = tmp_path / "scratch"
    spread = analyze_sources(corpus.sources, Settings(model="none"), outcomes=told, workers=2,
                             partitions=7, scratch=scratch)
    for name in RESULT_FRAMES:
        assert_frame_equal(getattr(spread, name), getattr(single, name), check_exact=True)
    assert (spread.trace_count, spread.systemic, spread.note, spread.detector_errors) == (
        single.trace_count, single.systemic, single.note, single.detector_errors)
    assert spread.trace_count == 400 and not single.clusters.is_empty()
    # the split traces were analysed whole: their findings and blame are the same
    split = pl.col("trace_id").is_in(corpus.split_trace_ids)
    assert spread.findings.filter(split).height > 0 and spread.blame.filter(split).height > 0
    # corpus statistics were global: outliers need 20 samples of a label
    assert {"latency_outlier", "token_outlier"} <= set(spread.findings["detector"])
    assert list(scratch.iterdir()) == []  # the shuffle files are gone


def test_sources_through_fsspec_urls_read_like_local_files(corpus: SplitCorpus) -> None:
    import fsspec

    memory = fsspec.filesystem("memory")
    for piece in expand_sources(corpus.sources):
        name = Path(piece.path)
        memory.pipe(f"/team/{name.parent.name}/{name.name}", name.read_bytes())
    urls = ["memory://team/a", "memory://team/b", "memory://team/*/team.json"]
    assert [p.kind for p in expand_sources(urls)] == [p.kind for p in expand_sources(
        corpus.sources)]
    assert_frame_equal(read_sources(urls).drop("origin"), read_sources(corpus.sources)
                       .drop("origin"))


def test_cli_analyze_on_a_local_cluster(corpus: SplitCorpus, tmp_path: Path) -> None:
    single = json.loads(halo_nb.analyze(source=corpus.sources, model="none").to_json())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run(
        [sys.executable, "-m", "halo_nb.cli", "analyze", "--source", *corpus.sources,
         "--engine", "dask", "--workers", "2", "--scratch", str(tmp_path / "scratch"),
         "--model", "none", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    spread = json.loads(out.stdout)
    for result in (single, spread):  # where each process would store
        result.pop("settings")
    assert spread == single
    assert list((tmp_path / "scratch").iterdir()) == []
