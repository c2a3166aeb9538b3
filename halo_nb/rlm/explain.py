"""One trace's outcome and blame as plain text, for a terminal (``halo explain``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from ..config import Settings
from .engine import analyze_frame
from .result import AnalysisResult

WIDTH = 100  # characters of a reason line before it is cut


def explain_trace(result: AnalysisResult, trace_id: str) -> str:
    """The outcome of ``trace_id``, its decisive step with the reasons, the other
    candidates, the descent and the trace's findings, as lines of text."""
    row = result.assignments.filter(pl.col("trace_id") == trace_id)
    if row.is_empty():
        raise KeyError(f"trace {trace_id!r} is not in this analysis")
    outcome, source = row.row(0, named=True)["outcome"], row.row(0, named=True)["outcome_source"]
    lines = [f"trace {trace_id}: {str(outcome).upper()} (from {source})"]
    blamed = result.blame.filter(pl.col("trace_id") == trace_id).sort("rank").to_dicts()
    if blamed:
        top = blamed[0]
        lines.append(f"decisive step: {top['span_name']} (span {top['span_id']}, agent "
                     f"{top['agent'] or 'unknown'}, layer {top['layer']}, "
                     f"score {top['score']:.2f})")
        lines += [f"  why: {_cut(reason)}" for reason in top["reasons"]] or [
            "  why: no signal fired; ranked by position and role alone"]
        lines.append("  descent: " + " → ".join(s[:8] for s in top["descent"]))
        if len(blamed) > 1:
            lines.append("other candidates:")
            lines += [f"  #{b['rank']} {b['score']:.2f} {b['span_name']} ({b['agent'] or '?'})"
                      + (f": {', '.join(b['signals'])}" if b["signals"] else "")
                      for b in blamed[1:]]
    elif outcome == "failed":
        lines.append("no step to blame (the trace has no spans below its root)")
    else:
        lines.append("no blame: only failed traces are blamed (mark the run failed with "
                     "annotate(outcome=\"failure\") or pass outcomes= to the analysis)")
    findings = result.findings.filter(pl.col("trace_id") == trace_id).sort("start_ns")
    if findings.height:
        lines.append(f"findings ({findings.height}):")
        lines += [f"  [{f['severity']}] {f['detector']} at {f['span_name']}: {_cut(f['message'])}"
                  for f in findings.head(10).to_dicts()]
    return "\n".join(lines)


def explain_spans(spans: pl.DataFrame, settings: Settings,
                  trace_ids: Sequence[str] | None = None,
                  outcomes: Mapping[str, str] | None = None) -> str:
    """Analyse ``spans`` (e.g. a snapshot's) and explain each trace, or the given ones."""
    result = analyze_frame(spans, settings, outcomes=outcomes)
    ids = list(trace_ids) if trace_ids else result.assignments["trace_id"].to_list()
    return "\n\n".join(explain_trace(result, tid) for tid in ids)


def _cut(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= WIDTH else text[:WIDTH - 1] + "…"
