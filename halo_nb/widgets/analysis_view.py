"""The analysis result as the views read it: cluster and hypothesis rows, each trace's
findings (for the trace list), each span's findings and the decisive span (for the
waterfall), and evidence spans with a short excerpt of what they say (for insights)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from .arrow import frame_to_ipc

Message = tuple[dict[str, Any], list[bytes]]

SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
EVIDENCE_PER_CLUSTER = 6
EXCERPT_CHARS = 140
TRACE_FINDINGS_SCHEMA = {"trace_id": pl.String, "finding_count": pl.UInt32,
                         "worst_severity": pl.String, "cluster_id": pl.String,
                         "cluster_title": pl.String}


def _rank(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String).replace_strict(SEVERITY_RANK, default=5,
                                                         return_dtype=pl.Int8)


def _worst(column: str = "severity") -> pl.Expr:
    """The worst severity of a group (as text)."""
    return pl.col(column).cast(pl.String).sort_by(_rank(column)).first()


@dataclass
class AnalysisView:
    """The analysis result as the front end reads it; missing parts read as empty."""

    findings: pl.DataFrame | None = None
    clusters: pl.DataFrame | None = None
    hypotheses: pl.DataFrame | None = None
    assignments: pl.DataFrame | None = None
    blame: pl.DataFrame | None = None
    systemic: bool = False
    trace_count: int | None = None
    note: str = ""
    model_status: str = ""
    _highlights: dict[str, tuple[dict[str, set[str]], set[str]]] = field(default_factory=dict)
    _trace_findings: pl.DataFrame | None = None

    @classmethod
    def of(cls, result: Any) -> AnalysisView:
        if result is None:
            return cls(note="No analysis has run yet.")
        return cls(findings=getattr(result, "findings", None),
                   clusters=getattr(result, "clusters", None),
                   hypotheses=getattr(result, "hypotheses", None),
                   assignments=getattr(result, "assignments", None),
                   blame=getattr(result, "blame", None),
                   systemic=bool(getattr(result, "systemic", False)),
                   trace_count=getattr(result, "trace_count", None),
                   note=str(getattr(result, "note", "") or ""),
                   model_status=str(getattr(result, "model_status", "") or ""))

    # ---- clusters and insights ----------------------------------------------------------

    def message(self, store: Any) -> Message:
        content = {"type": "analysis", "systemic": self.systemic, "note": self.note,
                   "model_status": self.model_status,
                   "total_traces": (len(store.trace_ids()) if self.trace_count is None
                                    else self.trace_count),
                   "evidence": self.evidence(store), "decisive": self.decisive_by_cluster()}
        return content, [frame_to_ipc(self.cluster_rows()), frame_to_ipc(self.hypothesis_rows())]

    def cluster_rows(self) -> pl.DataFrame:
        """Clusters by severity, then prevalence (the order of both views)."""
        columns = {"cluster_id": pl.String, "title": pl.String, "signature": pl.String,
                   "detector": pl.String,
                   "span_path": pl.String, "severity": pl.String, "trace_count": pl.Float64,
                   "prevalence": pl.Float64, "failed_trace_count": pl.Float64,
                   "lift": pl.Float64, "causal_chain": pl.List(pl.String),
                   "earliest_signal": pl.String, "trace_ids": pl.List(pl.String),
                   "example_trace_ids": pl.List(pl.String)}
        rows = _columns(self.clusters, columns)
        return rows.sort(_rank("severity"), pl.col("prevalence"), descending=[False, True],
                         nulls_last=True)

    def hypothesis_rows(self) -> pl.DataFrame:
        columns = {"cluster_id": pl.String, "title": pl.String, "hypothesis": pl.String,
                   "suggested_fix": pl.String,
                   "confidence": pl.Float64, "rule": pl.String, "narrative": pl.String,
                   "evidence_trace_ids": pl.List(pl.String),
                   "evidence_span_ids": pl.List(pl.String)}
        return _columns(self.hypotheses, columns).sort("confidence", descending=True,
                                                       nulls_last=True)

    def evidence(self, store: Any) -> dict[str, list[dict[str, str]]]:
        """cluster id → its first evidence spans (trace, span, name, excerpt)."""
        hypotheses = self.hypothesis_rows()
        out: dict[str, list[dict[str, str]]] = {}
        for row in hypotheses.iter_rows(named=True):
            span_ids = list(dict.fromkeys(row["evidence_span_ids"] or []))[:EVIDENCE_PER_CLUSTER]
            if not span_ids:
                continue
            frames = []
            for trace_id in dict.fromkeys(row["evidence_trace_ids"] or []):
                try:
                    frames.append(store.spans(trace_id).filter(pl.col("span_id").is_in(span_ids)))
                except KeyError:  # the trace is no longer stored
                    continue
            if not frames:
                continue
            found = pl.concat(frames, how="vertical_relaxed")
            by_id = {r["span_id"]: r for r in found.iter_rows(named=True)}
            out[row["cluster_id"]] = [
                {"trace_id": by_id[s]["trace_id"], "span_id": s, "name": by_id[s]["name"],
                 "excerpt": excerpt(by_id[s])} for s in span_ids if s in by_id]
        return out

    # ---- the decisive span (AnalysisResult.blame) ------------------------------------------

    def _decisive_rows(self) -> pl.DataFrame | None:
        blame = self.blame
        if blame is None or blame.height == 0 or "rank" not in blame.columns:
            return None
        return blame.filter(pl.col("rank") == 1)

    def decisive(self, trace_id: str) -> dict[str, Any] | None:
        """The span the analysis blames for a failed trace, with its score and reasons."""
        rows = self._decisive_rows()
        if rows is None:
            return None
        match = rows.filter(pl.col("trace_id") == trace_id)
        if match.height == 0:
            return None
        row = match.row(0, named=True)
        return {"span_id": row["span_id"], "score": row.get("score"), "agent": row.get("agent"),
                "reasons": list(row.get("reasons") or [])}

    def decisive_by_cluster(self) -> dict[str, dict[str, Any]]:
        """cluster id → the decisive step most of its failed traces share."""
        rows = self._decisive_rows()
        if rows is None or self.assignments is None or self.assignments.height == 0:
            return {}
        joined = rows.join(self.assignments.select("trace_id", "cluster_id"), on="trace_id")
        out: dict[str, dict[str, Any]] = {}
        for (cluster_id,), group in joined.filter(pl.col("cluster_id").is_not_null()).group_by(
                "cluster_id", maintain_order=True):
            steps = Counter((r["span_name"], r["agent"]) for r in group.iter_rows(named=True))
            (name, agent), count = steps.most_common(1)[0]
            top = group.filter(pl.col("span_name") == name).sort("score", descending=True)
            reasons = top.row(0, named=True)["reasons"] or []
            out[str(cluster_id)] = {"name": name, "agent": agent, "traces": count,
                                    "reasons": list(reasons)[:3]}
        return out

    # ---- findings per trace and per span ---------------------------------------------------

    def trace_findings(self) -> pl.DataFrame:
        """trace id → number of findings, worst severity, primary cluster and its title."""
        if self._trace_findings is not None:
            return self._trace_findings
        findings = self.findings
        if findings is None or findings.height == 0:
            self._trace_findings = pl.DataFrame(schema=TRACE_FINDINGS_SCHEMA)
            return self._trace_findings
        cluster = (pl.col("cluster_id").drop_nulls().first() if "cluster_id" in findings.columns
                   else pl.lit(None, pl.String))
        per_trace = findings.group_by("trace_id").agg(
            pl.len().cast(pl.UInt32).alias("finding_count"), _worst().alias("worst_severity"),
            cluster.alias("_finding_cluster"))
        if self.assignments is not None and "cluster_id" in self.assignments.columns:
            primary = self.assignments.select("trace_id", pl.col("cluster_id").alias("_primary"))
            per_trace = per_trace.join(primary, on="trace_id", how="left")
        else:
            per_trace = per_trace.with_columns(pl.lit(None, pl.String).alias("_primary"))
        per_trace = per_trace.with_columns(
            pl.coalesce("_primary", "_finding_cluster").cast(pl.String).alias("cluster_id"))
        titles = self.cluster_rows().select("cluster_id", pl.col("title").alias("cluster_title"))
        self._trace_findings = per_trace.join(titles, on="cluster_id", how="left").select(
            (pl.col(name).cast(dtype) for name, dtype in TRACE_FINDINGS_SCHEMA.items()))
        return self._trace_findings

    def span_findings(self, trace_id: str) -> pl.DataFrame:
        """span id → worst severity of its findings, for one trace."""
        if self.findings is None or self.findings.height == 0:
            return pl.DataFrame(schema={"span_id": pl.String, "finding": pl.String})
        return (self.findings.filter(pl.col("trace_id") == trace_id)
                .group_by("span_id").agg(_worst().alias("finding")))

    def highlight(self, cluster_id: str | None, spans: pl.DataFrame) -> list[str]:
        """Spans of one trace that a cluster flags: its findings' spans in that trace and
        the evidence spans of the cluster and of its hypotheses."""
        if cluster_id is None or self.clusters is None or self.clusters.height == 0:
            return []
        if cluster_id not in self._highlights:
            self._highlights[cluster_id] = self._cluster_spans(cluster_id)
        by_trace, evidence = self._highlights[cluster_id]
        trace_id = spans["trace_id"][0] if spans.height else None
        present = spans["span_id"].to_list()
        return sorted(set(by_trace.get(trace_id, ())) | evidence.intersection(present))

    def _cluster_spans(self, cluster_id: str) -> tuple[dict[str, set[str]], set[str]]:
        clusters = self.clusters
        assert clusters is not None
        match = clusters.filter(pl.col("cluster_id").cast(pl.String) == cluster_id)
        if match.height == 0:
            return {}, set()
        cluster = match.row(0, named=True)
        evidence = set(cluster.get("evidence_span_ids") or [])
        if self.hypotheses is not None and "evidence_span_ids" in self.hypotheses.columns:
            for ids in self.hypotheses.filter(
                    pl.col("cluster_id").cast(pl.String) == cluster_id
            )["evidence_span_ids"].to_list():
                evidence.update(ids or [])
        by_trace: dict[str, set[str]] = {}
        if self.findings is not None and self.findings.height:
            if "cluster_id" in self.findings.columns:
                found = self.findings.filter(pl.col("cluster_id").cast(pl.String) == cluster_id)
            else:
                found = self.findings.filter(pl.col("signature") == cluster["signature"])
            for trace_id, span_id in found.select("trace_id", "span_id").iter_rows():
                by_trace.setdefault(trace_id, set()).add(span_id)
        return by_trace, evidence


def _flat(value: Any) -> str:
    return re.sub(r"\s+", " ", str(value)).strip()


def _clip(text: str, limit: int = EXCERPT_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit - 1]}…"


def excerpt(row: dict[str, Any]) -> str:
    """One line saying what a span did: a tool call and what came back (its error or its
    result), else its error, else its output."""
    error = row.get("status_message") if str(row.get("status")) == "error" else None
    if row.get("tool_name") or str(row.get("kind")) == "tool":
        args = row.get("tool_args") or row.get("input") or ""
        result = row.get("tool_result") if row.get("tool_result") is not None else row.get("output")
        shown = error or (_flat(result) if result not in (None, "") else "nothing")
        return _clip(f"{_flat(args)} → {_flat(shown)}")
    return _clip(_flat(error or row.get("output") or row.get("input") or ""))


def _columns(frame: pl.DataFrame | None, columns: dict[str, pl.DataType]) -> pl.DataFrame:
    """``frame`` with exactly ``columns`` in those types (absent ones null)."""
    if frame is None:
        return pl.DataFrame(schema=columns)
    return frame.select(
        (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in columns.items())
