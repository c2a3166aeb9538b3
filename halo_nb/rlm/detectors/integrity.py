"""Broken trace structure found while building the span graph."""

from __future__ import annotations

from collections.abc import Iterator

from ..graph import TraceView
from ..registry import Hit, detector

_MESSAGES = {
    "orphan": "parent span missing from the trace; its children hang under the synthetic root",
    "self_parent": "span names itself as its parent",
    "cycle": "parent links form a cycle (cut here)",
    "clock_skew": "span lies outside its parent's time range (clock skew)",
}


@detector("trace_integrity", severity="low", scope="trace")
def trace_integrity(trace: TraceView) -> Iterator[Hit]:
    """A missing parent span (reported once, on its earliest orphan child, with all
    orphans listed), parent cycles and clock skew between parent and child. Clock skew
    is severity info: it distorts timings but breaks nothing. The signature names the
    service, since an orphan's span path no longer says where it belonged."""
    orphans: dict[str, list[str]] = {}
    for span_id, reason, evidence in trace.integrity:
        if reason == "orphan":
            orphans.setdefault(evidence["missing_parent_span_id"], []).append(span_id)
    for span_id, reason, evidence in trace.integrity:
        if reason == "orphan":
            siblings = orphans[evidence["missing_parent_span_id"]]
            if siblings[0] != span_id:
                continue
            evidence = {**evidence, "orphan_span_ids": siblings}
        service = trace.by_id[span_id].service
        yield Hit(span_id, _MESSAGES[reason], {"issue": reason, "service": service, **evidence},
                  key=f"{reason} in {service}" if service else reason,
                  severity="info" if reason == "clock_skew" else None)
