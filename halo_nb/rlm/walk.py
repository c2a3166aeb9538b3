"""The recursive walk: children first, each span judged by the span detectors on its
own data and on its children's summaries; its summary then goes up to its parent.

Layers: the top-level span is layer 0. Spans down to ``analysis_depth`` are judged one
by one; a span at ``analysis_depth`` judges its whole subtree as one unit (node-level
detectors see the subtree flattened as its children) and findings below it are made
at that layer, on the span path of that subtree with a ``/**`` suffix.
"""

from __future__ import annotations

import json
import traceback
from typing import Any

from .graph import SpanNode, TraceView
from .registry import Detector, Hit
from .signatures import signature


class Summary:
    """What a subtree reports to its parent."""

    __slots__ = ("span_id", "path", "spans", "errors", "unended", "llm_calls", "tool_calls",
                 "tokens", "signals")

    def __init__(self, span: SpanNode) -> None:
        self.span_id = span.span_id
        self.path = span.path
        self.spans = 1
        self.errors = 1 if span.failed else 0
        self.unended = 0 if span.ended else 1
        self.llm_calls = 1 if span.kind == "llm" else 0
        self.tool_calls = 1 if span.kind == "tool" else 0
        self.tokens = span.tokens_total or 0
        self.signals: dict[str, int] = {}

    def absorb(self, child: Summary) -> None:
        self.spans += child.spans
        self.errors += child.errors
        self.unended += child.unended
        self.llm_calls += child.llm_calls
        self.tool_calls += child.tool_calls
        self.tokens += child.tokens
        for name, count in child.signals.items():
            self.signals[name] = self.signals.get(name, 0) + count


class NodeContext:
    """What a span-scope detector sees beside the span itself."""

    __slots__ = ("trace", "span", "child_summaries")

    def __init__(self, trace: TraceView, span: SpanNode, child_summaries: list[Summary]) -> None:
        self.trace = trace
        self.span = span
        self.child_summaries = child_summaries

    @property
    def layer(self) -> int:
        return self.span.layer

    @property
    def subtree_errors(self) -> int:
        """Failed spans among the descendants (not the span itself)."""
        return sum(s.errors for s in self.child_summaries)

    @property
    def subtree_unended(self) -> int:
        return sum(s.unended for s in self.child_summaries)

    @property
    def judged_children(self) -> list[SpanNode]:
        """The units this node is judged on: its children above ``analysis_depth``, its
        whole subtree (flattened, start order) at it, nothing below it."""
        span, trace = self.span, self.trace
        if span.depth < trace.analysis_depth:
            return trace.children(span)
        if span.depth == trace.analysis_depth:
            return trace.descendants(span)
        return []


def walk_trace(trace: TraceView, span_detectors: list[Detector],
               trace_detectors: list[Detector], errors: list[str]) -> list[dict[str, Any]]:
    """Run every detector over one trace; return finding rows (unsorted)."""
    rows: list[dict[str, Any]] = []
    summaries = trace.summaries
    order: list[SpanNode] = list(trace.top)
    for s in order:  # breadth first; reversed, children come before their parents
        order.extend(trace.children(s))
    # Which detectors apply depends on the kind and the prefilter fields (requires=):
    # decided once per combination, not per span.
    fields = sorted({d.requires for d in span_detectors if d.requires})
    applicable: dict[tuple[Any, ...], list[Detector]] = {}
    for span in reversed(order):
        summary = Summary(span)
        kids = [summaries[c.span_id] for c in trace.children(span)]
        for kid in kids:
            summary.absorb(kid)
        summaries[span.span_id] = summary
        key = (span.kind, *[bool(getattr(span, f, False)) for f in fields])
        dets = applicable.get(key)
        if dets is None:
            flags = dict(zip(fields, key[1:], strict=True))
            dets = applicable[key] = [
                d for d in span_detectors if (d.kinds is None or span.kind in d.kinds)
                and (d.requires is None or flags[d.requires])]
        if not dets:
            continue
        ctx = NodeContext(trace, span, kids)
        for det in dets:
            try:
                out = det.func(span, ctx)
            except Exception as exc:  # one broken detector must not lose the others
                errors.append(_failure(det, exc, trace.trace_id, span))
                continue
            if out is None or out is False:
                continue
            for hit in _hits(det, out, errors, trace.trace_id, span):
                rows.append(_row(trace, det, hit))
                summary.signals[det.name] = summary.signals.get(det.name, 0) + 1
    for det in trace_detectors:
        try:
            out = det.func(trace)
            hits = _hits(det, out, errors, trace.trace_id, None) if out else ()
        except Exception as exc:
            errors.append(_failure(det, exc, trace.trace_id, None))
            continue
        rows.extend(_row(trace, det, hit) for hit in hits)
    return rows


def _hits(det: Detector, out: Any, errors: list[str], trace_id: str,
          span: SpanNode | None) -> tuple[Hit, ...]:
    """A detector's return value as Hits (a generator runs here, inside the caller's try)."""
    if isinstance(out, Hit):
        return (out,)
    if isinstance(out, str):
        if span is None:
            raise TypeError("a trace-scope detector must return Hit objects, not text")
        return (Hit(span.span_id, out),)
    hits = tuple(out)
    for hit in hits:
        if not isinstance(hit, Hit):
            raise TypeError(f"{det.name} returned {type(hit).__name__}, expected Hit")
    return hits


def _failure(det: Detector, exc: Exception, trace_id: str, span: SpanNode | None) -> str:
    where = f" span {span.span_id}" if span is not None else ""
    last = traceback.extract_tb(exc.__traceback__)[-1]
    return (f"{det.name}: {type(exc).__name__}: {exc} (trace {trace_id}{where}, "
            f"{last.filename}:{last.lineno})")


def _row(trace: TraceView, det: Detector, hit: Hit) -> dict[str, Any]:
    span = trace.by_id.get(hit.span_id)
    if span is not None:
        name, path, layer, start = span.name, span.finding_path, span.layer, span.start_ns
    else:  # a span the trace refers to but never sent (e.g. a missing root)
        name, path, layer = "(missing span)", "(missing span)", 0
        start = min((s.start_ns for s in trace.spans), default=0)
    evidence = dict(hit.evidence)
    if span is not None and span.depth > trace.analysis_depth:
        evidence.setdefault("summarised_under_span_id", span.anchor)
    return {
        "trace_id": trace.trace_id,
        "span_id": hit.span_id,
        "detector": det.name,
        "severity": hit.severity or det.severity,
        "layer": layer,
        "span_name": name,
        "span_path": path,
        "signature": signature(det.name, path, hit.key),
        "message": hit.message,
        "evidence": json.dumps(evidence, sort_keys=True, default=str, ensure_ascii=False),
        "start_ns": start,
        "follows": sorted(set(hit.follows)),
    }
