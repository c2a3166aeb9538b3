"""AnalysisResult: the engine's output (Polars frames plus a few facts)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ..config import Settings, as_dict
from .registry import SEVERITIES

SEVERITY = pl.Enum(SEVERITIES)
_STRS = pl.List(pl.String)

FINDINGS_SCHEMA: dict[str, pl.DataType] = {
    "trace_id": pl.String(), "span_id": pl.String(), "detector": pl.String(),
    "severity": SEVERITY, "layer": pl.Int32(), "span_name": pl.String(),
    "span_path": pl.String(), "signature": pl.String(), "message": pl.String(),
    "evidence": pl.String(), "start_ns": pl.Int64(), "cluster_id": pl.String(),
}
CLUSTERS_SCHEMA: dict[str, pl.DataType] = {
    "cluster_id": pl.String(), "title": pl.String(), "signature": pl.String(),
    "detector": pl.String(), "span_path": pl.String(), "severity": SEVERITY,
    "trace_count": pl.Int64(), "prevalence": pl.Float64(), "failed_trace_count": pl.Int64(),
    "lift": pl.Float64(), "causal_chain": _STRS, "earliest_signal": pl.String(),
    "detectors": _STRS, "finding_count": pl.Int64(), "trace_ids": _STRS,
    "example_trace_ids": _STRS, "evidence_span_ids": _STRS,
}
HYPOTHESES_SCHEMA: dict[str, pl.DataType] = {
    "cluster_id": pl.String(), "title": pl.String(), "hypothesis": pl.String(),
    "suggested_fix": pl.String(), "confidence": pl.Float64(), "rule": pl.String(),
    "narrative": pl.String(), "evidence_trace_ids": _STRS, "evidence_span_ids": _STRS,
}
ASSIGNMENTS_SCHEMA: dict[str, pl.DataType] = {
    "trace_id": pl.String(), "cluster_id": pl.String(), "failed": pl.Boolean(),
    "outcome": pl.String(), "outcome_source": pl.String(),
}
# One row per blamed span of a failed trace, best first (rank 1 = the decisive step).
BLAME_SCHEMA: dict[str, pl.DataType] = {
    "trace_id": pl.String(), "rank": pl.Int32(), "span_id": pl.String(),
    "span_name": pl.String(), "agent": pl.String(), "layer": pl.Int32(),
    "score": pl.Float64(), "signals": _STRS, "reasons": _STRS, "descent": _STRS,
}


def frame(rows: list[dict[str, Any]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema,
                        orient="row") if rows else pl.DataFrame(schema=schema)


@dataclass
class AnalysisResult:
    """Findings, failure clusters and hypotheses of one analysis.

    ``assignments`` gives every analysed trace its primary cluster (null if none),
    whether it counts as failed (the base rate behind ``lift``) and its outcome
    (failed / succeeded / unknown) with where that came from. ``blame`` ranks, for each
    failed trace, the spans most likely to be the decisive mistake (see blame.py).
    """

    findings: pl.DataFrame
    clusters: pl.DataFrame
    hypotheses: pl.DataFrame
    assignments: pl.DataFrame
    systemic: bool
    note: str
    model_status: str
    trace_count: int
    settings: Settings
    detector_errors: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    blame: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=BLAME_SCHEMA))

    def cluster(self, cluster_id: str) -> dict[str, Any]:
        """One cluster with its hypothesis, as a dict."""
        rows = self.clusters.filter(pl.col("cluster_id") == cluster_id).to_dicts()
        if not rows:
            raise KeyError(f"no cluster {cluster_id!r}")
        hyp = self.hypotheses.filter(pl.col("cluster_id") == cluster_id).to_dicts()
        return {**rows[0], "hypothesis": hyp[0] if hyp else None}

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready values (severity as text, lists as lists)."""
        def rows(df: pl.DataFrame) -> list[dict[str, Any]]:
            return df.with_columns(pl.col(pl.Enum).cast(pl.String)).to_dicts() if len(df) else []

        return {
            "trace_count": self.trace_count, "systemic": self.systemic, "note": self.note,
            "model_status": self.model_status, "settings": as_dict(self.settings),
            "findings": rows(self.findings), "clusters": rows(self.clusters),
            "hypotheses": rows(self.hypotheses), "assignments": rows(self.assignments),
            "blame": rows(self.blame), "detector_errors": list(self.detector_errors),
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    def summary(self) -> str:
        counts = self.findings.group_by("severity").len().sort("severity", descending=True)
        by_sev = ", ".join(f"{n} {s}" for s, n in counts.iter_rows()) or "none"
        lines = [f"{self.trace_count} traces analysed; findings: {by_sev}.", self.note,
                 f"model: {self.model_status}"]
        hyps = {h["cluster_id"]: h for h in self.hypotheses.to_dicts()}
        for c in self.clusters.head(10).to_dicts():
            h = hyps.get(c["cluster_id"], {})
            lines.append(f"{c['cluster_id']} {h.get('title', c['detector'])}: "
                         f"{c['trace_count']} traces ({c['prevalence']:.0%}), {c['span_path']}")
        return "\n".join(line for line in lines if line)

    def __repr__(self) -> str:
        return f"<AnalysisResult\n{self.summary()}>"

    def _repr_html_(self) -> str:
        esc = html.escape
        hyps = {h["cluster_id"]: h for h in self.hypotheses.to_dicts()}
        rows = []
        for c in self.clusters.head(20).to_dicts():
            h = hyps.get(c["cluster_id"], {})
            lift = "n/a" if c["lift"] is None else f"{c['lift']:.2f}"
            rows.append(
                f"<tr><td>{esc(c['cluster_id'])}</td><td>{esc(h.get('title', ''))}</td>"
                f"<td>{esc(str(c['severity']))}</td><td>{c['trace_count']} "
                f"({c['prevalence']:.0%})</td><td>{lift}</td>"
                f"<td><code>{esc(c['span_path'])}</code></td>"
                f"<td>{esc(h.get('hypothesis', ''))}<br><i>Fix:</i> "
                f"{esc(h.get('suggested_fix', ''))}</td></tr>")
        table = ("<table><tr><th>cluster</th><th>title</th><th>severity</th><th>traces</th>"
                 "<th>lift</th><th>span path</th><th>hypothesis</th></tr>"
                 + "".join(rows) + "</table>") if rows else ""
        return (f"<div><b>halo_nb analysis</b>: {self.trace_count} traces, "
                f"{len(self.findings)} findings, {len(self.clusters)} clusters."
                f"<br>{esc(self.note)}<br><small>model: {esc(self.model_status)}</small>"
                f"{table}</div>")
