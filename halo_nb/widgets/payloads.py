"""What each view needs from the span store and the analysis result, as messages.

A message is ``(content, buffers)``: a small JSON-able dict plus Arrow IPC buffers for
row data. The live widgets send these over the comm; the static report embeds the same
messages, so both render through one front-end path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ..ingest.rules import HALO_ANNOTATION_EVENT as ANNOTATION_EVENT
from .arrow import frame_to_ipc

Message = tuple[dict[str, Any], list[bytes]]

PREVIEW_CHARS = 160
# A single value sent to the detail pane; the pane shows the first 600 and expands to this.
DETAIL_VALUE_CHARS = 200_000
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
TRACE_LIST_COLUMNS = ("trace_id", "name", "service", "start_ms", "duration_ms", "span_count",
                      "llm_count", "tool_count", "tokens_total", "error_count", "status", "ended",
                      "preview")


def trace_rows(traces: pl.DataFrame) -> pl.DataFrame:
    """The trace-list columns of ``store.traces()`` (input reduced to a short preview)."""
    return traces.select(
        "trace_id", "name", "service",
        (pl.col("start_ns") / 1e6).alias("start_ms"),
        "duration_ms", "span_count", "llm_count", "tool_count", "tokens_total", "error_count",
        "status",
        "ended",
        pl.col("input").str.slice(0, PREVIEW_CHARS).alias("preview"),
    )


@dataclass
class TraceTableFeed:
    """The trace list's rows as first a full table, then only what changed (upserts and
    removals), so a live list of 100,000 traces costs the browser only the new rows."""

    last: pl.DataFrame | None = None

    def full(self, traces: pl.DataFrame) -> Message:
        rows = trace_rows(traces)
        self.last = rows
        return {"type": "traces", "mode": "replace"}, [frame_to_ipc(rows)]

    def changes(self, traces: pl.DataFrame) -> Message | None:
        if self.last is None:
            return self.full(traces)
        rows = trace_rows(traces)
        changed = rows.join(self.last, on=list(rows.columns), how="anti", nulls_equal=True)
        removed = self.last.join(rows, on="trace_id", how="anti")["trace_id"].to_list()
        self.last = rows
        if changed.height == 0 and not removed:
            return None
        content = {"type": "traces", "mode": "upsert", "removed": removed}
        return content, [frame_to_ipc(changed)]


def waterfall_message(spans: pl.DataFrame, trace_id: str, highlight: list[str],
                      keep: bool = False) -> Message:
    """One trace's spans as waterfall rows: times relative to the trace start, in ms."""
    if spans.height == 0:
        return {"type": "waterfall", "trace_id": trace_id,
                "error": f"No spans stored for trace {trace_id}."}, []
    origin = spans["start_ns"].min()
    rows = spans.select(
        "span_id", "parent_span_id", "name", pl.col("kind").cast(pl.String),
        ((pl.col("start_ns") - origin) / 1e6).alias("start"),
        ((pl.col("end_ns") - origin) / 1e6).alias("end"),
        pl.col("status").cast(pl.String), "tokens_total", "model", "tool_name",
        (pl.col("events").str.len_bytes() > 2).alias("events"),
        pl.col("events").str.contains(ANNOTATION_EVENT, literal=True).alias("annotated"),
    )
    root = spans.sort(pl.col("parent_span_id").is_not_null(), "start_ns").row(0, named=True)
    content = {"type": "waterfall", "trace_id": trace_id, "name": root["name"],
               "start_ms": origin / 1e6, "highlight": highlight, "keep": keep}
    return content, [frame_to_ipc(rows)]


def _clip(value: str | None, limit: int) -> str | None:
    if value is None or len(value) <= limit:
        return value
    return f"{value[:limit]}\n… [truncated by halo_nb: {len(value):,} characters in total]"


def _clip_json(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return _clip(value, limit)
    if isinstance(value, dict):
        return {k: _clip_json(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_clip_json(v, limit) for v in value]
    return value


def span_detail(spans: pl.DataFrame, span_id: str, findings: pl.DataFrame | None) -> dict:
    """Everything the detail pane shows for one span (fetched only when it is selected)."""
    match = spans.filter(pl.col("span_id") == span_id)
    if match.height == 0:
        raise KeyError(f"span {span_id} is not in trace {spans['trace_id'][0]}")
    row = match.row(0, named=True)
    return detail_from_row(row, spans["start_ns"].min(),
                           _span_findings(findings, row["trace_id"], span_id))


def detail_from_row(row: dict[str, Any], origin_ns: int, findings: list[dict],
                    limit: int = DETAIL_VALUE_CHARS) -> dict:
    """The detail of one span-frame row; event times relative to ``origin_ns``."""
    attributes = json.loads(row["attributes"] or "{}")
    events = []
    for event in json.loads(row["events"] or "[]"):
        time_ns = event.get("time_ns")
        events.append({"name": event.get("name"), "attributes": event.get("attributes") or {},
                       "offset_ms": None if time_ns is None else (int(time_ns) - origin_ns) / 1e6})
    detail = {key: row[key] for key in (
        "span_id", "parent_span_id", "name", "service", "model", "tool_name", "finish_reason",
        "status_message", "duration_ms", "tokens_in", "tokens_out", "tokens_total")}
    detail.update(
        kind=str(row["kind"]), status=str(row["status"]),
        input=_clip(row["input"], limit), output=_clip(row["output"], limit),
        tool_args=_clip(row["tool_args"], limit), tool_result=_clip(row["tool_result"], limit),
        attributes=_clip_json(attributes, limit),
        events=[_clip_json(e, limit) for e in events if e["name"] != ANNOTATION_EVENT],
        annotations=[_clip_json(e, limit) for e in events if e["name"] == ANNOTATION_EVENT],
        findings=findings,
    )
    return detail


def _span_findings(findings: pl.DataFrame | None, trace_id: str, span_id: str) -> list[dict]:
    if findings is None or findings.height == 0:
        return []
    rows = findings.filter((pl.col("trace_id") == trace_id) & (pl.col("span_id") == span_id))
    return [finding_entry(r) for r in rows.iter_rows(named=True)]


def finding_entry(row: dict[str, Any]) -> dict[str, Any]:
    return {"detector": row["detector"], "severity": str(row["severity"]),
            "message": row["message"], "evidence": row.get("evidence")}


@dataclass
class AnalysisView:
    """The analysis result as the front end reads it; missing parts read as empty."""

    findings: pl.DataFrame | None = None
    clusters: pl.DataFrame | None = None
    hypotheses: pl.DataFrame | None = None
    systemic: bool = False
    note: str = ""
    model_status: str = ""
    _highlights: dict[str, tuple[dict[str, set[str]], set[str]]] = field(default_factory=dict)

    @classmethod
    def of(cls, result: Any) -> AnalysisView:
        if result is None:
            return cls(note="No analysis has run yet.")
        return cls(findings=getattr(result, "findings", None),
                   clusters=getattr(result, "clusters", None),
                   hypotheses=getattr(result, "hypotheses", None),
                   systemic=bool(getattr(result, "systemic", False)),
                   note=str(getattr(result, "note", "") or ""),
                   model_status=str(getattr(result, "model_status", "") or ""))

    def message(self, total_traces: int) -> Message:
        content = {"type": "analysis", "systemic": self.systemic, "note": self.note,
                   "model_status": self.model_status, "total_traces": total_traces}
        return content, [frame_to_ipc(self._cluster_rows()), frame_to_ipc(self._hypothesis_rows())]

    def _cluster_rows(self) -> pl.DataFrame:
        columns = {"cluster_id": pl.String, "title": pl.String, "signature": pl.String,
                   "detector": pl.String,
                   "span_path": pl.String, "severity": pl.String, "trace_count": pl.Float64,
                   "prevalence": pl.Float64, "failed_trace_count": pl.Float64,
                   "lift": pl.Float64, "causal_chain": pl.List(pl.String),
                   "earliest_signal": pl.String, "example_trace_ids": pl.List(pl.String)}
        rows = _columns(self.clusters, columns)
        return rows.sort(
            pl.col("severity").replace_strict(SEVERITY_RANK, default=5, return_dtype=pl.Int8),
            pl.col("prevalence"), descending=[False, True], nulls_last=True)

    def _hypothesis_rows(self) -> pl.DataFrame:
        columns = {"cluster_id": pl.String, "title": pl.String, "hypothesis": pl.String,
                   "suggested_fix": pl.String,
                   "confidence": pl.Float64, "rule": pl.String, "narrative": pl.String,
                   "evidence_trace_ids": pl.List(pl.String),
                   "evidence_span_ids": pl.List(pl.String)}
        return _columns(self.hypotheses, columns).sort("confidence", descending=True,
                                                       nulls_last=True)

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


def _columns(frame: pl.DataFrame | None, columns: dict[str, pl.DataType]) -> pl.DataFrame:
    """``frame`` with exactly ``columns`` in those types (absent ones null)."""
    if frame is None:
        return pl.DataFrame(schema=columns)
    return frame.select(
        (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in columns.items())
