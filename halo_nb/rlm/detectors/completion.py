"""Traces that never ended, or ended without an output."""

from __future__ import annotations

from ..graph import SpanNode, TraceView
from ..registry import Hit, detector
from ..walk import NodeContext

# A trace whose last activity is this close to the newest timestamp in the corpus may
# still be running: its open spans are reported at severity "info".
RUNNING_GRACE_NS = 60 * 1_000_000_000


@detector("never_ended", severity="high", scope="span", requires="unended")
def never_ended(span: SpanNode, ctx: NodeContext) -> Hit | None:
    """A span that never ended (no end time) while all spans below it did: where the trace
    got stuck. Open parents above it are not reported again."""
    if span.ended or ctx.subtree_unended:
        return None
    trace = ctx.trace
    last = max(max(s.start_ns, s.end_ns or 0) for s in trace.spans)
    running = trace.corpus_end_ns is not None and trace.corpus_end_ns - last < RUNNING_GRACE_NS
    open_ancestors = 0
    parent = trace.parent(span)
    while parent is not None:
        open_ancestors += 0 if parent.ended else 1
        parent = trace.parent(parent)
    return Hit(span.span_id,
               "span never ended" + (" (the trace may still be running)" if running else ""),
               {"kind": span.kind, "start_ns": span.start_ns, "open_ancestors": open_ancestors,
                "possibly_running": running},
               severity="info" if running else None)


@detector("no_output", severity="medium", scope="trace")
def no_output(trace: TraceView) -> Hit | None:
    """The trace's root ended without error and recorded its input but no output: the
    agent finished without an answer. Needs content capture."""
    root: SpanNode | None = trace.root
    if root is None or not root.ended or root.failed or root.input is None:
        return None
    if root.output is not None and root.output.strip():
        return None
    return Hit(root.span_id, "the trace ended without an output",
               {"kind": root.kind, "output": root.output, "llm_calls": len(trace.llms)})
