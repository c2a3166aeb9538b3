"""Tool (or any span) error status and recorded exceptions."""

from __future__ import annotations

from ..graph import SpanNode, TraceView
from ..outcome import FAILED, SUCCEEDED, trace_outcome
from ..registry import Hit, detector
from ..walk import NodeContext


@detector("error_status", severity="high", scope="span", requires="failed")
def error_status(span: SpanNode, ctx: NodeContext) -> Hit | None:
    """A span ended with ERROR status or recorded an exception event, reported where the
    failure started: a parent whose only trouble is a failed child is not reported again.
    High when the run did not recover; low when it did (recovered()): the agent was told
    and went on to a successful answer."""
    if not span.failed or ctx.subtree_errors:
        return None
    exc_type = exc_message = None
    for event in span.event_list:
        if isinstance(event, dict) and event.get("name") == "exception":
            attrs = event.get("attributes") or {}
            exc_type, exc_message = attrs.get("exception.type"), attrs.get("exception.message")
            break
    message = span.status_message or exc_message or exc_type or "error status"
    key = str(exc_type) if exc_type else str(message)[:60]
    evidence = {"kind": span.kind, "status": span.status, "status_message": span.status_message,
                "exception_type": exc_type, "tool": span.tool_name}
    evidence["recovered"] = recovered(ctx.trace, span)
    return Hit(span.span_id, f"{span.kind} span failed: {str(message)[:120]}", evidence, key=key,
               severity="low" if evidence["recovered"] else None)


def recovered(trace: TraceView, span: SpanNode) -> bool:
    """Whether the run got past this failure. When someone said how the run ended (the
    caller, an annotation, an eval score), that decides. Otherwise: the trace's root is
    another span, ended without error and answered (when it records its question), the
    engine sees no evidence of failure (the trace's outcome is not failed), no ancestor of
    the failed span failed, and a decision started after the failure ended (an LLM call or
    an agent's step: the agent saw it and went on)."""
    if trace.outcome is None:  # detectors run outside the engine
        trace.outcome = trace_outcome(trace)
    if trace.outcome.told:
        return trace.outcome.outcome == SUCCEEDED
    root = trace.root
    if root is None or root is span or not root.ended or root.failed or span.end_ns is None:
        return False
    if root.input is not None and not (root.output or "").strip():
        return False  # the root records its question but gave no answer
    if trace.outcome.outcome == FAILED:
        return False  # the engine's own evidence of failure
    if "last_decision_ns" not in trace.memo:
        trace.memo["last_decision_ns"] = max(
            (s.start_ns for s in trace.spans
             if s.start_ns is not None and s.kind != "tool" and s is not root), default=None)
    parent = trace.parent(span)
    while parent is not None:
        if parent.failed:
            return False
        parent = trace.parent(parent)
    last_decision = trace.memo["last_decision_ns"]
    return last_decision is not None and last_decision >= span.end_ns
