"""``halo check``: did a change make an agent's failure clusters worse? For CI.

Both sides (a snapshot file, or a folder of them) are imported into fresh in-memory
stores and analysed with the same settings. Clusters are matched by signature (their
causal chain of finding signatures, ``detector|span path|key -> ...``). A cluster's
prevalence on one side is the share of that side's traces with findings of every
signature in its chain, so a failure that sat inside a longer chain (another cluster)
still counts as seen on that side. A cluster of the
current side is a regression when its signature is new (no baseline trace has it) or
its prevalence grew by more than ``max_growth`` (absolute: 0.1 = ten percentage points),
and its severity is at least ``min_severity`` (default medium: latency outliers, which
move with machine load, are reported but do not fail the check).

Hypotheses are the rules' text (the model is off): a CI gate must not depend on phrasing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from ..config import Settings, load_settings
from ..rlm import AnalysisResult, analyze_frame
from ..rlm.registry import SEVERITIES
from ..storage.store import SpanStore
from .snapshot import import_snapshot

Status = Literal["new", "grown", "unchanged", "shrunk", "gone"]
DEFAULT_MAX_GROWTH = 0.1
DEFAULT_MIN_SEVERITY = "medium"
EXAMPLES = 3


class CheckError(ValueError):
    """A side of the check cannot be analysed (no snapshots, too few traces)."""


@dataclass(frozen=True)
class Side:
    """One side of the check: where its traces came from and their analysis."""

    label: str
    files: tuple[Path, ...]
    analysis: AnalysisResult

    @property
    def trace_count(self) -> int:
        return self.analysis.trace_count

    def traces_with(self, chain: Sequence[str]) -> list[str]:
        """Trace ids with (non-info) findings of every signature in ``chain``, sorted."""
        findings = self.analysis.findings
        if findings.is_empty() or not chain:
            return []
        per_trace = (findings.filter(pl.col("signature").is_in(list(chain))
                                     & (pl.col("severity") != "info"))
                     .group_by("trace_id").agg(pl.col("signature").n_unique().alias("n")))
        return sorted(per_trace.filter(pl.col("n") == len(set(chain)))
                      .get_column("trace_id").to_list())

    def clusters_by_signature(self) -> dict[str, dict[str, Any]]:
        """The side's clusters keyed by signature, each with its hypothesis."""
        hypotheses = {h["cluster_id"]: h for h in self.analysis.hypotheses.to_dicts()}
        out: dict[str, dict[str, Any]] = {}
        for row in self.analysis.clusters.to_dicts():
            if row["signature"] not in out:  # clusters come largest first
                out[row["signature"]] = {**row, "hypothesis": hypotheses.get(row["cluster_id"])}
        return out


@dataclass(frozen=True)
class ClusterChange:
    signature: str
    title: str
    detector: str
    span_path: str
    severity: str
    status: Status
    regression: bool
    baseline_traces: int
    baseline_prevalence: float
    current_traces: int
    current_prevalence: float
    example_trace_ids: tuple[str, ...]
    hypothesis: str | None
    suggested_fix: str | None

    @property
    def growth(self) -> float:
        return self.current_prevalence - self.baseline_prevalence

    def describe(self) -> str:
        """One line: what changed, in numbers."""
        now = f"{self.current_traces} traces ({self.current_prevalence:.0%})"
        before = f"{self.baseline_traces} traces ({self.baseline_prevalence:.0%})"
        if self.status == "new":
            return f"new failure cluster: {self.title}: {now}, none in the baseline"
        return (f"{self.status} failure cluster: {self.title}: {before} in the baseline, "
                f"{now} now ({self.growth * 100:+.0f} points)")


@dataclass(frozen=True)
class CheckResult:
    baseline: Side
    current: Side
    max_growth: float
    min_severity: str = DEFAULT_MIN_SEVERITY
    changes: tuple[ClusterChange, ...] = field(default_factory=tuple)

    @property
    def regressions(self) -> list[ClusterChange]:
        return [c for c in self.changes if c.regression]

    @property
    def ok(self) -> bool:
        return not self.regressions

    def to_text(self) -> str:
        lines = [self._headline()]
        lines += [f"  REGRESSION  {c.describe()}  [{c.signature}]" for c in self.regressions]
        lines += [f"  {c.status:<10}  {c.describe()}" for c in self.changes if not c.regression]
        return "\n".join(lines)

    def _headline(self) -> str:
        verdict = (f"{len(self.regressions)} regression(s)" if self.regressions
                   else "no regression")
        return (f"halo check: {verdict} — baseline {self.baseline.trace_count} traces, current "
                f"{self.current.trace_count} traces, {len(self.changes)} cluster signature(s), "
                f"max growth {self.max_growth * 100:.0f} points, min severity "
                f"{self.min_severity}")

    def to_markdown(self) -> str:
        mark = "❌" if self.regressions else "✅"
        out = [f"## {mark} {self._headline()}", "",
               f"- Baseline: {_files(self.baseline.files)}",
               f"- Current: {_files(self.current.files)}", ""]
        if not self.changes:
            out.append("No failure clusters on either side.")
            return "\n".join(out) + "\n"
        out += ["| | status | failure cluster | span path | baseline | current | change |",
                "|---|---|---|---|---|---|---|"]
        for c in self.changes:
            icon = "❌" if c.regression else ("✅" if c.status in ("shrunk", "gone") else "➖")
            out.append(
                f"| {icon} | {c.status} | {_md(c.title)} (`{_md(c.detector)}`) | "
                f"`{_md(c.span_path)}` | {c.baseline_traces} ({c.baseline_prevalence:.0%}) | "
                f"{c.current_traces} ({c.current_prevalence:.0%}) | {c.growth * 100:+.0f} pts |")
        for c in self.regressions:
            out += ["", f"### ❌ {_md(c.title)}", "", f"`{_md(c.signature)}`", "",
                    _md(c.describe()) + "."]
            if c.hypothesis:
                out += ["", f"**Hypothesis:** {_md(c.hypothesis)}"]
            if c.suggested_fix:
                out += ["", f"**Suggested fix:** {_md(c.suggested_fix)}"]
            if c.example_trace_ids:
                out += ["", "Example traces: " + ", ".join(f"`{t}`" for t in c.example_trace_ids)]
        return "\n".join(out) + "\n"

    def to_junit(self) -> str:
        """JUnit XML: one testcase per cluster signature, a failure for each regression."""
        suites = ET.Element("testsuites", name="halo check", tests=str(len(self.changes)),
                            failures=str(len(self.regressions)), errors="0")
        suite = ET.SubElement(suites, "testsuite", name="halo check",
                              tests=str(len(self.changes)), failures=str(len(self.regressions)),
                              errors="0", skipped="0")
        props = ET.SubElement(suite, "properties")
        for name, value in (("baseline", _files(self.baseline.files)),
                            ("current", _files(self.current.files)),
                            ("baseline_traces", str(self.baseline.trace_count)),
                            ("current_traces", str(self.current.trace_count)),
                            ("max_growth", f"{self.max_growth:g}"),
                            ("min_severity", self.min_severity)):
            ET.SubElement(props, "property", name=name, value=value)
        for c in self.changes:
            case = ET.SubElement(suite, "testcase", classname=f"halo.check.{c.detector}",
                                 name=c.signature)
            if c.regression:
                failure = ET.SubElement(case, "failure", message=c.describe(), type=c.status)
                failure.text = "\n".join(line for line in (
                    c.describe(),
                    f"hypothesis: {c.hypothesis}" if c.hypothesis else "",
                    f"suggested fix: {c.suggested_fix}" if c.suggested_fix else "",
                    "example traces: " + ", ".join(c.example_trace_ids)
                    if c.example_trace_ids else "") if line)
            else:
                ET.SubElement(case, "system-out").text = c.describe()
        ET.indent(suites)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def snapshot_files(path: Path | str) -> list[Path]:
    """A snapshot file as it is, or the ``*.json`` files of a folder (sorted)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.json") if p.is_file())
        if not files:
            raise CheckError(f"{path}: no snapshot files (*.json) in this folder")
        return files
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    return [path]


def load_side(label: str, path: Path | str, settings: Settings) -> Side:
    """Import ``path``'s snapshots into a fresh in-memory store and analyse them."""
    files = snapshot_files(path)
    store = SpanStore(None)
    try:
        for file in files:
            import_snapshot(store, file)
        spans = store.spans()
    finally:
        store.close()
    traces = spans.get_column("trace_id").n_unique()
    needed = settings.min_traces_for_systemic_analysis
    if traces < needed:
        raise CheckError(f"{label} ({path}): {traces} trace(s); comparing failure clusters "
                         f"needs at least {needed} per side (min_traces_for_systemic_analysis)")
    return Side(label, tuple(files), analyze_frame(spans, settings))


def check(baseline: Path | str, current: Path | str, *, max_growth: float = DEFAULT_MAX_GROWTH,
          min_severity: str = DEFAULT_MIN_SEVERITY, settings: Settings | None = None
          ) -> CheckResult:
    """Analyse both sides and compare their failure clusters."""
    if not 0.0 <= max_growth <= 1.0:
        raise CheckError(f"max_growth: must be within 0..1 (a share of traces), "
                         f"got {max_growth!r}")
    if min_severity not in SEVERITIES:
        raise CheckError(f"min_severity: expected one of {', '.join(SEVERITIES)}, "
                         f"got {min_severity!r}")
    settings = (settings or load_settings()).replace(model="none", cross_trace_correlation=True)
    base = load_side("baseline", baseline, settings)
    cur = load_side("current", current, settings)
    return compare_sides(base, cur, max_growth, min_severity)


def compare_sides(baseline: Side, current: Side, max_growth: float,
                  min_severity: str = DEFAULT_MIN_SEVERITY) -> CheckResult:
    base_clusters = baseline.clusters_by_signature()
    cur_clusters = current.clusters_by_signature()
    changes = [_change(sig, baseline, current, base_clusters.get(sig), cur_clusters.get(sig),
                       max_growth, min_severity)
               for sig in [*cur_clusters, *(s for s in base_clusters if s not in cur_clusters)]]
    order = {"new": 0, "grown": 1, "unchanged": 2, "shrunk": 3, "gone": 4}
    changes.sort(key=lambda c: (not c.regression, order[c.status], -c.current_traces,
                                c.signature))
    return CheckResult(baseline, current, max_growth, min_severity, tuple(changes))


def _change(signature: str, baseline: Side, current: Side, base: dict[str, Any] | None,
            cur: dict[str, Any] | None, max_growth: float, min_severity: str) -> ClusterChange:
    row = cur or base or {}
    chain = row.get("causal_chain") or [signature]
    base_traces = baseline.traces_with(chain)
    cur_traces = current.traces_with(chain)
    base_prev = len(base_traces) / baseline.trace_count
    cur_prev = len(cur_traces) / current.trace_count
    growth = cur_prev - base_prev
    tolerance = 1e-9
    status: Status
    if cur is None:
        status = "gone" if not cur_traces else "shrunk"
    elif not base_traces:
        status = "new"
    elif growth > max_growth + tolerance:
        status = "grown"
    elif growth < -max_growth - tolerance:
        status = "shrunk"
    else:
        status = "unchanged"
    hypothesis = row.get("hypothesis") or {}
    severity = str(row.get("severity") or "info")
    serious = SEVERITIES.index(severity) >= SEVERITIES.index(min_severity)
    return ClusterChange(
        signature=signature, title=row.get("title") or row.get("detector") or signature,
        detector=row.get("detector") or signature.split("|", 1)[0],
        span_path=row.get("span_path") or "", severity=severity, status=status,
        regression=serious and status in ("new", "grown"),
        baseline_traces=len(base_traces), baseline_prevalence=base_prev,
        current_traces=len(cur_traces), current_prevalence=cur_prev,
        example_trace_ids=tuple((cur_traces or base_traces)[:EXAMPLES]),
        hypothesis=hypothesis.get("hypothesis"), suggested_fix=hypothesis.get("suggested_fix"))


def _files(files: Sequence[Path]) -> str:
    names = [str(f) for f in files]
    if len(names) <= 3:
        return ", ".join(names)
    return f"{', '.join(names[:3])} and {len(names) - 3} more"


def _md(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")
