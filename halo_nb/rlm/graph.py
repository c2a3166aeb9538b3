"""One trace as a span graph: a networkx DiGraph (parent -> child, children in start
order) under a synthetic root, with broken traces repaired and flagged.

Repairs: spans whose parent is not in the trace (orphans) and spans caught in a
parent cycle hang under the synthetic root; a child that starts before its parent or
ends after it (clock skew) is kept where it is. Each repair is recorded in
``TraceView.integrity`` and reported by the ``trace_integrity`` detector.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

import networkx as nx

if TYPE_CHECKING:
    from .outcome import Outcome

ROOT = "__root__"
SKEW_TOLERANCE_NS = 1_000_000

# Columns of the prepared frame copied into each SpanNode. "attributes" and "events"
# arrive only where prepare() marked them needed; the rest load lazily from the frame.
SPAN_FIELDS = ("trace_id", "span_id", "parent_span_id", "name", "kind", "start_ns", "end_ns",
               "duration_ms", "status", "status_message", "model", "tokens_in", "tokens_out",
               "tokens_total", "tool_name", "tool_args", "tool_result", "input", "output",
               "finish_reason", "attributes_inline", "events_inline", "label", "failed",
               "fw_candidate", "declared_json", "tok_value", "lat_expected_ms", "lat_z",
               "lat_outlier", "tok_median", "tok_z", "tok_outlier", "row", "service", "unended",
               "empty_by_design")


class ColumnSource:
    """Lazy access to the big JSON columns of the prepared frame, by row number."""

    def __init__(self, attributes: Any, events: Any) -> None:
        self._columns = {"attributes": attributes, "events": events}

    def get(self, column: str, row: int) -> str | None:
        return self._columns[column][row]


class SpanNode:
    """One span's values (the frame row) plus its place in the trace."""

    __slots__ = (*SPAN_FIELDS, "depth", "path", "finding_path", "layer", "anchor",
                 "source", "_attrs", "_events")

    def __init__(self, values: tuple[Any, ...], source: ColumnSource | None = None) -> None:
        _assign(self, values)
        self.depth = 0
        self.path = self.finding_path = ""
        self.layer = 0
        self.anchor = self.span_id
        self.source = source
        self._attrs: dict[str, Any] | None = None
        self._events: list[dict[str, Any]] | None = None

    @property
    def attributes(self) -> str | None:
        """The attributes JSON text (fetched from the frame if not copied in)."""
        if self.attributes_inline is None and self.source is not None:
            self.attributes_inline = self.source.get("attributes", self.row)
        return self.attributes_inline

    @property
    def events(self) -> str | None:
        if self.events_inline is None and self.source is not None:
            self.events_inline = self.source.get("events", self.row)
        return self.events_inline

    @property
    def attrs(self) -> dict[str, Any]:
        """The span attributes (parsed from the JSON column on first use)."""
        if self._attrs is None:
            self._attrs = _loads(self.attributes, dict)
        return self._attrs

    @property
    def event_list(self) -> list[dict[str, Any]]:
        if self._events is None:
            self._events = _loads(self.events, list)
        return self._events

    @property
    def ended(self) -> bool:
        return self.end_ns is not None

    def __repr__(self) -> str:
        return f"SpanNode({self.kind}:{self.name!r} {self.span_id})"


def _make_assign() -> Any:
    """A function assigning a row tuple to the SpanNode fields (generated once: much
    faster than a setattr loop over 200k spans)."""
    body = "\n".join(f"    node.{name} = values[{i}]" for i, name in enumerate(SPAN_FIELDS))
    namespace: dict[str, Any] = {}
    exec(f"def assign(node, values):\n{body}\n", namespace)  # noqa: S102
    return namespace["assign"]


_assign = _make_assign()


def _loads(text: str | None, kind: type) -> Any:
    if not text:
        return kind()
    try:
        value = json.loads(text)
    except ValueError:
        return kind()
    return value if isinstance(value, kind) else kind()


class TraceView:
    """A trace ready for the detectors: graph, order, depths, paths, repairs."""

    def __init__(self, trace_id: str, spans: list[SpanNode], analysis_depth: int) -> None:
        self.trace_id = trace_id
        self.spans = spans  # start order (the frame is sorted)
        self.by_id = {s.span_id: s for s in spans}
        self.analysis_depth = analysis_depth
        self.integrity: list[tuple[str, str, dict[str, Any]]] = []
        self.graph = nx.DiGraph()
        self.top: list[SpanNode] = []
        self._children: dict[str, list[SpanNode]] = {}
        self.summaries: dict[str, Any] = {}
        # Shared per-trace memo for detectors (see detectors/common.py).
        self.memo: dict[str, Any] = {}
        # Newest timestamp in the analysed corpus; set by the engine.
        self.corpus_end_ns: int | None = None
        # The trace's outcome (outcome.py): set by the engine before the detectors run.
        self.outcome: Outcome | None = None
        self._build()

    # -- construction -------------------------------------------------------------------
    def _build(self) -> None:
        by_id = self.by_id
        parent_of: dict[str, str | None] = {}
        for s in self.spans:
            pid = s.parent_span_id
            if pid is not None and pid in by_id and pid != s.span_id:
                parent_of[s.span_id] = pid
            else:
                parent_of[s.span_id] = None
                if pid is not None:
                    reason = "self_parent" if pid == s.span_id else "orphan"
                    self.integrity.append((s.span_id, reason, {"missing_parent_span_id": pid}))
        self._break_cycles(parent_of)
        self._parent_of = parent_of  # the graph's edges, for O(1) parent lookups
        children: dict[str, list[SpanNode]] = {s.span_id: [] for s in self.spans}
        for s in self.spans:
            pid = parent_of[s.span_id]
            if pid is None:
                self.top.append(s)
            else:
                children[pid].append(s)
        self._children = children
        graph = self.graph
        graph.add_node(ROOT, synthetic=True)
        graph.add_edges_from((ROOT, s.span_id) for s in self.top)
        graph.add_edges_from((pid, c.span_id) for pid, kids in children.items() for c in kids)
        self._place()

    def _break_cycles(self, parent_of: dict[str, str | None]) -> None:
        """Spans that never reach a top-level span through their parents sit in (or
        under) a parent cycle: cut each cycle at its earliest span."""
        state: dict[str, int] = {}  # 1 = reaches the top, 2 = on the current chain
        for s in self.spans:
            chain: list[str] = []
            node: str | None = s.span_id
            while node is not None and node not in state:
                state[node] = 2
                chain.append(node)
                node = parent_of[node]
            if node is not None and state[node] == 2:
                cycle = chain[chain.index(node):]
                cut = min(cycle, key=lambda i: (self.by_id[i].start_ns or 0, i))
                self.integrity.append((cut, "cycle", {
                    "cycle_span_ids": sorted(cycle), "parent_span_id": parent_of[cut]}))
                parent_of[cut] = None
            for visited in chain:
                state[visited] = 1

    def _place(self) -> None:
        """Depth, span path, layer and anchor of every span (breadth first)."""
        limit = self.analysis_depth
        queue = list(self.top)
        for s in queue:
            s.depth, s.path = 0, s.label
            s.finding_path, s.layer, s.anchor = s.label, 0, s.span_id
        for s in queue:  # grows while iterating: a breadth-first walk
            for c in self._children[s.span_id]:
                c.depth = s.depth + 1
                c.path = f"{s.path}/{c.label}"
                if c.depth <= limit:
                    c.finding_path, c.layer, c.anchor = c.path, c.depth, c.span_id
                else:
                    c.finding_path = s.finding_path if s.depth > limit else f"{s.path}/**"
                    c.layer, c.anchor = limit, s.anchor
                self._check_skew(s, c)
                queue.append(c)

    def _check_skew(self, parent: SpanNode, child: SpanNode) -> None:
        early = (parent.start_ns - child.start_ns) if child.start_ns is not None else 0
        late = 0
        if child.end_ns is not None and parent.end_ns is not None:
            late = child.end_ns - parent.end_ns
        if early > SKEW_TOLERANCE_NS or late > SKEW_TOLERANCE_NS:
            self.integrity.append((child.span_id, "clock_skew", {
                "parent_span_id": parent.span_id,
                "starts_before_parent_ms": round(max(early, 0) / 1e6, 3),
                "ends_after_parent_ms": round(max(late, 0) / 1e6, 3)}))

    # -- queries the detectors use ------------------------------------------------------
    def children(self, span: SpanNode | str) -> list[SpanNode]:
        """Direct children in start order."""
        return self._children[span if isinstance(span, str) else span.span_id]

    def parent(self, span: SpanNode) -> SpanNode | None:
        """The parent span (None for top-level spans, which hang under the synthetic root)."""
        pid = self._parent_of[span.span_id]
        return None if pid is None else self.by_id[pid]

    def descendants(self, span: SpanNode) -> list[SpanNode]:
        """Every span below ``span``, in start order."""
        below = [self.by_id[i] for i in nx.descendants(self.graph, span.span_id)]
        return sorted(below, key=lambda s: (s.start_ns, s.span_id))

    @property
    def root(self) -> SpanNode | None:
        """The trace's own root span: the single top-level span that has no parent id."""
        if len(self.top) == 1 and self.top[0].parent_span_id is None:
            return self.top[0]
        return None

    @cached_property
    def tools(self) -> list[SpanNode]:
        return [s for s in self.spans if s.kind == "tool"]

    @cached_property
    def llms(self) -> list[SpanNode]:
        return [s for s in self.spans if s.kind == "llm"]

    @cached_property
    def capture_on(self) -> bool:
        """Whether content (inputs, outputs, arguments, results) was captured at all."""
        return any(s.input is not None or s.output is not None or s.tool_args is not None
                   or s.tool_result is not None for s in self.spans)

    def after(self, span: SpanNode) -> Iterator[SpanNode]:
        """Spans that start after ``span`` started, in start order (lazily: callers
        usually stop at the first few)."""
        starts = self.memo.get("starts")
        if starts is None:
            starts = self.memo["starts"] = [s.start_ns for s in self.spans]
        for index in range(bisect_right(starts, span.start_ns), len(self.spans)):
            yield self.spans[index]
