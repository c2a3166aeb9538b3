"""What each view needs from the span store and the analysis result, as messages.

A message is ``(content, buffers)``: a small JSON-able dict plus Arrow IPC buffers for
row data. The live widgets send these over the comm; the static report embeds the same
messages, so both render through one front-end path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import polars as pl

from ..ingest.rules import HALO_ANNOTATION_EVENT as ANNOTATION_EVENT
from .analysis_view import AnalysisView, Message
from .arrow import frame_to_ipc

PREVIEW_CHARS = 160
# A single value sent to the detail pane; the pane shows the first 600 and expands to this.
DETAIL_VALUE_CHARS = 200_000


def _preview(column: str) -> pl.Expr:
    """The start of a text column on one line (the list shows one line per trace)."""
    return (pl.col(column).str.slice(0, PREVIEW_CHARS).str.replace_all(r"\s+", " ")
            .str.strip_chars().alias(f"{column}_preview"))


def trace_rows(traces: pl.DataFrame, analysis: AnalysisView | None = None) -> pl.DataFrame:
    """The trace-list columns of ``store.traces()``: input and output cut to a preview, and
    each trace's findings from the analysis (count, worst severity, cluster)."""
    rows = traces.select(
        "trace_id", "name", "service",
        (pl.col("start_ns") / 1e6).alias("start_ms"),
        "duration_ms", "span_count", "llm_count", "tool_count", "tokens_total", "error_count",
        "status", "ended", _preview("input"), _preview("output"),
    )
    findings = (analysis or AnalysisView()).trace_findings()
    return rows.join(findings, on="trace_id", how="left", maintain_order="left")


@dataclass
class TraceTableFeed:
    """The trace list's rows as first a full table, then only what changed (upserts and
    removals), so a live list of 100,000 traces costs the browser only the new rows."""

    last: pl.DataFrame | None = None

    def full(self, traces: pl.DataFrame, analysis: AnalysisView | None = None) -> Message:
        rows = trace_rows(traces, analysis)
        self.last = rows
        return {"type": "traces", "mode": "replace"}, [frame_to_ipc(rows)]

    def changes(self, traces: pl.DataFrame, analysis: AnalysisView | None = None
                ) -> Message | None:
        if self.last is None:
            return self.full(traces, analysis)
        rows = trace_rows(traces, analysis)
        changed = rows.join(self.last, on=list(rows.columns), how="anti", nulls_equal=True)
        removed = self.last.join(rows, on="trace_id", how="anti")["trace_id"].to_list()
        self.last = rows
        if changed.height == 0 and not removed:
            return None
        content = {"type": "traces", "mode": "upsert", "removed": removed}
        return content, [frame_to_ipc(changed)]


def waterfall_message(spans: pl.DataFrame, trace_id: str, highlight: list[str],
                      keep: bool = False, analysis: AnalysisView | None = None) -> Message:
    """One trace's spans as waterfall rows: times relative to the trace start, in ms, each
    span's worst finding, and the decisive span when the analysis blamed one."""
    if spans.height == 0:
        return {"type": "waterfall", "trace_id": trace_id,
                "error": f"No spans stored for trace {trace_id}."}, []
    analysis = analysis or AnalysisView()
    origin = spans["start_ns"].min()
    rows = spans.select(
        "span_id", "parent_span_id", "name", pl.col("kind").cast(pl.String),
        ((pl.col("start_ns") - origin) / 1e6).alias("start"),
        ((pl.col("end_ns") - origin) / 1e6).alias("end"),
        pl.col("status").cast(pl.String), "tokens_total", "model", "tool_name",
        (pl.col("events").str.len_bytes() > 2).alias("events"),
        pl.col("events").str.contains(ANNOTATION_EVENT, literal=True).alias("annotated"),
    ).join(analysis.span_findings(trace_id), on="span_id", how="left", maintain_order="left")
    root = spans.sort(pl.col("parent_span_id").is_not_null(), "start_ns").row(0, named=True)
    content = {"type": "waterfall", "trace_id": trace_id, "name": root["name"],
               "start_ms": origin / 1e6, "highlight": highlight, "keep": keep,
               "decisive": analysis.decisive(trace_id)}
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
