"""The signals blame weighs: structural facts about each candidate step of a failed
trace that carry across agents and frameworks (errors and what followed them, claims
after a failure, invented data, giving up, a framework's own self-assessment, numbers
in the final answer that no tool produced, who led the run).

A *unit* is one candidate at one layer of the descent: a child subtree (the child span
and everything below it, judged whole) or the parent's own step. ``layer_features``
turns the units of one layer into a feature matrix, one row per unit, columns in
``FEATURES`` order, values in 0..1.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .graph import SpanNode, TraceView

FEATURES: tuple[str, ...] = (
    "executes",            # the unit is a tool run (tools execute; agents decide)
    "first_step",          # the first step that acts on the task (the plan, the first attempt)
    "position",            # 0 at the first unit of the layer, 1 at the last
    "before_error",        # the last decision before the first failure in this layer
    "contains_error",      # a decision whose own span or subtree failed
    "after_error",         # the first decision after the first failure (acts on a bad result)
    "claim_after_error",   # claims success or verification while the last tool run failed
    "invents",             # assumes, simulates, uses placeholder or hypothetical data
    "gives_up",            # says it cannot go on
    "ungrounded_answer",   # first to state a final-answer number that no tool produced
    "stall_reported",      # the last decision before the framework reported no progress / a loop
    "lead_agent",          # made by the agent that took the first step (the run's lead)
)

CLAIM = re.compile(
    r"\b(?:verified|confirmed|successfully|succeeded|is correct|are correct|correctly|"
    r"task (?:is )?(?:complete|completed|done|finished)|final answer|"
    r"all (?:tests|checks) pass(?:ed)?)\b",
    re.IGNORECASE)
INVENTED = re.compile(
    r"\b(?:assum(?:e|ed|es|ing|ption)|simulat(?:e|ed|es|ing|ion)|placeholders?|hypothetical(?:ly)?|"
    r"mock(?:ed)? (?:data|values?|results?)|dummy|made[- ]up|fictional|sample data|example data|"
    r"for (?:illustration|demonstration) purposes|let'?s say|pretend)\b",
    re.IGNORECASE)
GIVES_UP = re.compile(
    r"\b(?:unable to|(?:can ?not|can't|could ?n[o']t) (?:proceed|continue|complete|access|find|"
    r"retrieve|determine|verify)|not (?:possible|able) to|gave up|give up|i(?:'m| am) sorry)\b",
    re.IGNORECASE)
# A framework's self-assessment saying the team is stuck (Magentic-One progress ledgers
# as JSON or as "key: value" text).
STALLED = re.compile(
    r"\"?is_progress_being_made\"?\s*:\s*(?:\{[^{}]*?\"answer\"\s*:\s*)?\"?false\b|"
    r"\"?is_in_loop\"?\s*:\s*(?:\{[^{}]*?\"answer\"\s*:\s*)?\"?true\b",
    re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w])")
TEXT_CAP = 20_000  # characters of one span's text that the patterns read


def span_text(span: SpanNode) -> str:
    """What a step said or returned: its output, else its tool result, else its status
    message (empty when content was not captured)."""
    text = span.output or span.tool_result or span.status_message or ""
    return text[:TEXT_CAP]


def numbers(text: str) -> set[str]:
    """Numbers in ``text`` worth tracing (two or more digits, or a decimal), without
    thousands separators."""
    found = set()
    for raw in _NUMBER.findall(text):
        value = raw.replace(",", "").rstrip(".")
        if len(value.replace(".", "")) >= 2:
            found.add(value)
    return found


def agent_name(trace: TraceView, span: SpanNode) -> str | None:
    """The span's agent: ``gen_ai.agent.name`` on it or its nearest ancestor, else the
    name of the nearest agent-kind span, else the service."""
    node: SpanNode | None = span
    while node is not None:
        name = node.attrs.get("gen_ai.agent.name") if node.attributes else None
        if name:
            return str(name)
        if node.kind == "agent":
            return re.sub(r"^invoke_agent\s+", "", node.name or "") or None
        node = trace.parent(node)
    return span.service


@dataclass
class Unit:
    """One candidate at one layer: ``span`` alone (``own``) or its whole subtree."""

    span: SpanNode
    spans: list[SpanNode]
    own: bool = False

    @cached_property
    def text(self) -> str:
        return "\n".join(t for t in (span_text(s) for s in self.spans) if t)

    @property
    def is_tool(self) -> bool:
        return self.span.kind == "tool"

    @cached_property
    def failed(self) -> bool:
        return any(s.failed for s in self.spans)

    @property
    def start_ns(self) -> int:
        return self.span.start_ns or 0


@dataclass
class TraceSignals:
    """Facts about a whole trace that each layer's features read."""

    trace: TraceView
    agents: dict[str, str | None] = field(default_factory=dict)

    def agent(self, span: SpanNode) -> str | None:
        if span.span_id not in self.agents:
            self.agents[span.span_id] = agent_name(self.trace, span)
        return self.agents[span.span_id]

    @cached_property
    def steps(self) -> list[SpanNode]:
        """Every span but the root, in start order."""
        root = self.trace.root
        return [s for s in self.trace.spans if s is not root]

    @cached_property
    def lead(self) -> str | None:
        """The agent of the first decision (a step that is not a tool run and does not
        merely repeat the task)."""
        first = next((s for s in self.steps if s.kind != "tool" and not self.echoes_input(s)), None)
        return None if first is None else self.agent(first)

    @cached_property
    def task(self) -> str:
        root = self.trace.root
        return ((root.input if root is not None else None) or "")[:TEXT_CAP]

    def echoes_input(self, span: SpanNode) -> bool:
        """The step only repeats the task (a user turn that carries the question)."""
        text = span_text(span).strip()
        return bool(text) and bool(self.task) and text in self.task

    @cached_property
    def final_answer(self) -> str:
        root = self.trace.root
        if root is not None and root.output:
            return root.output[:TEXT_CAP]
        last = next((s for s in reversed(self.steps) if s.kind != "tool" and span_text(s)), None)
        return "" if last is None else span_text(last)

    @cached_property
    def introducers(self) -> dict[str, list[str]]:
        """Span id -> the final-answer numbers it was the first to state, for numbers
        that appear in no tool result and not in the task."""
        grounded = numbers(self.task)
        for s in self.steps:
            if s.kind == "tool":
                grounded |= numbers(span_text(s))
        wanted = numbers(self.final_answer) - grounded
        first: dict[str, list[str]] = {}
        for s in self.steps:
            if not wanted:
                break
            if s.kind == "tool":
                continue
            hits = sorted(wanted & numbers(span_text(s)))
            if hits:
                first[s.span_id] = hits
                wanted -= set(hits)
        return first

    @cached_property
    def first_stall(self) -> SpanNode | None:
        """The first step whose self-assessment says the run is stuck."""
        return next((s for s in self.steps if STALLED.search(span_text(s))), None)

    def last_tool_failed_before(self, start_ns: int) -> SpanNode | None:
        """The latest tool run that started before ``start_ns`` if it failed, else None."""
        last = None
        for s in self.steps:
            if s.start_ns is None or s.start_ns >= start_ns:
                break
            if s.kind == "tool":
                last = s
        return last if last is not None and last.failed else None


def layer_features(signals: TraceSignals, units: list[Unit]
                   ) -> tuple[np.ndarray, list[dict[str, str]]]:
    """The feature matrix of one layer's units (start order) and, per unit, the
    evidence of each signal that fired (signal name -> short text)."""
    n = len(units)
    x = np.zeros((n, len(FEATURES)))
    evidence: list[dict[str, str]] = [{} for _ in units]
    col = {name: i for i, name in enumerate(FEATURES)}

    def fire(i: int, name: str, why: str, value: float = 1.0) -> None:
        x[i, col[name]] = value
        if value > 0 and why:
            evidence[i][name] = why

    decisions = [i for i, u in enumerate(units) if not u.is_tool
                 and not (len(u.spans) == 1 and signals.echoes_input(u.span))]
    if decisions:
        fire(decisions[0], "first_step", "the first step that acts on the task")
    first_error = next((i for i, u in enumerate(units) if u.failed), None)
    if first_error is not None:
        bad = units[first_error]
        where = _describe(bad)
        before = [i for i in decisions if i < first_error]
        if before:
            fire(before[-1], "before_error", f"the last decision before {where} failed")
        after = [i for i in decisions if i > first_error]
        if after:
            fire(after[0], "after_error", f"the first decision after {where} failed")
    stall = signals.first_stall
    if stall is not None:
        before = [i for i in decisions if units[i].start_ns < (stall.start_ns or 0)
                  and stall not in units[i].spans]
        if before:
            fire(before[-1], "stall_reported",
                 f"the framework reported no progress or a loop after it ({_describe_span(stall)})")
    for i, unit in enumerate(units):
        x[i, col["position"]] = i / (n - 1) if n > 1 else 0.0
        if unit.is_tool:
            fire(i, "executes", "")
        text = unit.text
        if not unit.is_tool and unit.failed:
            fire(i, "contains_error", f"a span in it failed: {_first_failure(unit)}")
        if i in decisions:
            _text_signals(signals, unit, text, i, fire)
        if signals.lead is not None and signals.agent(unit.span) == signals.lead:
            fire(i, "lead_agent", "")
    return x, evidence


def _text_signals(signals: TraceSignals, unit: Unit, text: str, i: int,
                  fire: Callable[[int, str, str], None]) -> None:
    if not text:
        return
    claim = CLAIM.search(text)
    if claim:
        failed = signals.last_tool_failed_before(unit.start_ns)
        if failed is not None:
            fire(i, "claim_after_error",
                 f"says {claim.group(0)!r} right after {_describe_span(failed)} failed")
    invented = INVENTED.search(text)
    if invented:
        fire(i, "invents", f"{invented.group(0)!r}: {quote(text, invented.start())}")
    gives_up = GIVES_UP.search(text)
    if gives_up:
        fire(i, "gives_up", f"{gives_up.group(0)!r}: {quote(text, gives_up.start())}")
    introduced = [n for s in unit.spans for n in signals.introducers.get(s.span_id, ())]
    if introduced:
        fire(i, "ungrounded_answer",
             "first to state " + ", ".join(introduced[:3])
             + " (in the final answer, in no tool result)")


def quote(text: str, at: int, width: int = 100) -> str:
    """Evidence text cut short around position ``at``."""
    start = max(0, at - width // 4)
    piece = " ".join(text[start:start + width].split())
    return ("…" if start else "") + piece + ("…" if start + width < len(text) else "")


def _describe_span(span: SpanNode) -> str:
    return f"{span.name} ({span.span_id[:8]})"


def _describe(unit: Unit) -> str:
    return _describe_span(unit.span)


def _first_failure(unit: Unit) -> str:
    bad = next(s for s in unit.spans if s.failed)
    message = bad.status_message or span_text(bad)
    return _describe_span(bad) + (f": {quote(message, 0, 80)}" if message else "")
