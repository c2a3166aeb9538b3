"""Judge the engine on the recorded framework corpus (tests/fixtures/frameworks/): healthy
runs must give no finding of medium or above and no cluster; every faulty run must be
caught by the detector its scenario expects. Shared by the tests and
benchmarks/frameworks.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from halo_nb.config import Settings
from halo_nb.ingest.otlp import decode_json
from halo_nb.rlm import AnalysisResult, analyze_frame

from .scenarios import EXPECTED, HEALTHY

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "frameworks"
SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3}
SETTINGS = Settings(model="none")


def libraries(root: Path = FIXTURES) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def versions(root: Path = FIXTURES) -> dict[str, dict]:
    return json.loads((root / "versions.json").read_text())


def load(library: str, root: Path = FIXTURES) -> dict[str, pl.DataFrame]:
    """scenario -> span frame, decoded from the recorded OTLP JSON."""
    return {path.stem: decode_json(path.read_bytes(), origin=str(path)).frame
            for path in sorted((root / library).glob("*.json"))}


@dataclass
class LibraryReport:
    """What the engine made of one library's recordings."""
    library: str
    healthy_traces: int = 0
    healthy_findings: list[dict] = field(default_factory=list)  # medium or above
    healthy_clusters: int = 0
    # scenario -> (faulty runs, runs caught by every expected detector)
    caught: dict[str, tuple[int, int]] = field(default_factory=dict)
    missed: dict[str, list[str]] = field(default_factory=dict)  # scenario -> detectors

    @property
    def faults_caught(self) -> int:
        return sum(1 for runs, hit in self.caught.values() if runs and hit == runs)


def _medium_or_above(result: AnalysisResult) -> pl.DataFrame:
    rank = pl.col("severity").replace_strict(SEVERITY_RANK, default=0)
    return result.findings.filter(rank >= SEVERITY_RANK["medium"])


def evaluate(library: str, root: Path = FIXTURES) -> LibraryReport:
    """Healthy scenarios analysed on their own (findings, clusters); each faulty scenario
    analysed together with the healthy runs, as a user's corpus mixes them."""
    frames = load(library, root)
    report = LibraryReport(library)
    healthy = pl.concat([frames[s] for s in HEALTHY if s in frames], how="vertical_relaxed")
    result = analyze_frame(healthy, SETTINGS)
    report.healthy_traces = result.trace_count
    report.healthy_findings = _medium_or_above(result).to_dicts()
    report.healthy_clusters = result.clusters.height
    for scenario, detectors in EXPECTED.items():
        if scenario not in frames:
            continue
        faulty = frames[scenario]
        result = analyze_frame(pl.concat([healthy, faulty], how="vertical_relaxed"), SETTINGS)
        traces = faulty["trace_id"].unique().to_list()
        found = result.findings.group_by("trace_id").agg(pl.col("detector").unique())
        hits = {row["trace_id"]: set(row["detector"]) for row in found.iter_rows(named=True)}
        caught = [t for t in traces if set(detectors) <= hits.get(t, set())]
        report.caught[scenario] = (len(traces), len(caught))
        missing = sorted({d for t in traces for d in detectors if d not in hits.get(t, set())})
        if missing:
            report.missed[scenario] = missing
    return report
