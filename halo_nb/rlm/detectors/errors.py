"""Tool (or any span) error status and recorded exceptions."""

from __future__ import annotations

from ..graph import SpanNode
from ..registry import Hit, detector
from ..walk import NodeContext


@detector("error_status", severity="high", scope="span", requires="failed")
def error_status(span: SpanNode, ctx: NodeContext) -> Hit | None:
    """A span ended with ERROR status or recorded an exception event, reported where the
    failure started: a parent whose only trouble is a failed child is not reported again."""
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
    return Hit(span.span_id, f"{span.kind} span failed: {str(message)[:120]}", evidence, key=key)
