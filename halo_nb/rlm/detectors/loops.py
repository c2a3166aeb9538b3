"""Agent loops and repeated identical LLM outputs."""

from __future__ import annotations

from collections.abc import Iterator

from ..graph import SpanNode, TraceView
from ..registry import Hit, detector
from ..text import is_empty_result, normalise_args, values_similarity
from ..walk import NodeContext
from .common import loop_tools, outcome, previous_call

LOOP_MIN_CALLS = 5
# Calls ask about the same thing when their argument values are this similar.
LOOP_SIMILAR_ARGS = 0.8
# Characters of a result compared when arguments are not captured.
RESULT_CHARS = 2000


@detector("agent_loop", severity="high", scope="span",
          kinds=("agent", "chain", "guardrail", "evaluator", "unknown"))
def agent_loop(span: SpanNode, ctx: NodeContext) -> Hit | None:
    """One agent loop (common.loop_of: however its framework nests steps) calls one tool
    LOOP_MIN_CALLS (5) times or more, at least half of the calls (and three) asking
    about the same as another (argument values at least LOOP_SIMILAR_ARGS similar): the
    agent cycles LLM -> tool without converging. Reported on the lowest span holding all
    those calls. High when the arguments repeat exactly; medium when they vary a little
    ("angle 2", "angle 3"). Calls whose arguments differ (six cities, six documents) are
    ordinary fan-out work and are not reported. Arguments not captured: the results
    tell (_severity_by_results)."""
    loop = _loops(ctx.trace).get(span.span_id)
    if loop is None:
        return None
    tool, calls, severity = loop
    distinct = len({normalise_args(c.tool_args) for c in calls if c.tool_args is not None}) or None
    return Hit(span.span_id, f"{tool} called {len(calls)} times under one {span.kind} span",
               {"tool": tool, "calls": len(calls), "distinct_args": distinct,
                "call_span_ids": [c.span_id for c in calls[:20]]},
               key=tool, follows=tuple(c.span_id for c in calls), severity=severity)


def _loops(trace: TraceView) -> dict[str, tuple[str, list[SpanNode], str]]:
    """Lowest span holding the calls -> (tool, calls, severity), per looping agent."""
    found = trace.memo.get("loops")
    if found is not None:
        return found
    found = {}
    for calls_of_agent in loop_tools(trace).values():
        by_tool: dict[str, list[SpanNode]] = {}
        for tool in calls_of_agent:
            if tool.tool_name:
                by_tool.setdefault(tool.tool_name, []).append(tool)
        for tool, calls in sorted(by_tool.items()):
            severity = _loop_severity(calls)
            if severity is None:
                continue
            holder = _lowest_common_ancestor(trace, calls)
            if holder is not None and (holder.span_id not in found
                                       or len(calls) > len(found[holder.span_id][1])):
                found[holder.span_id] = (tool, calls, severity)
    trace.memo["loops"] = found
    return found


def _loop_severity(calls: list[SpanNode]) -> str | None:
    if len(calls) < LOOP_MIN_CALLS:
        return None
    if any(c.tool_args is None for c in calls):
        return _severity_by_results(calls)
    texts = [normalise_args(c.tool_args) for c in calls]
    similar = sum(1 for i, a in enumerate(calls)
                  if any((values_similarity(a.tool_args, b.tool_args) or 0) >= LOOP_SIMILAR_ARGS
                         for j, b in enumerate(calls) if j != i))
    if similar < max(3, len(calls) / 2):
        return None
    repeated = max(texts.count(t) for t in set(texts))
    return "high" if repeated >= LOOP_MIN_CALLS else "medium"


def _severity_by_results(calls: list[SpanNode]) -> str | None:
    """A loop judged by what the calls returned, when what they asked is not recorded:
    medium when at least half of them (and three) returned the same (the agent keeps
    getting one answer, or one error, back); none when the results differ (a code runner
    running new code each time is work, not a loop); low when results are not captured
    either (a count alone)."""
    results = [c.tool_result if c.tool_result is not None else c.output for c in calls]
    if any(r is None for r in results):
        return "low"
    texts = [normalise_args(r[:RESULT_CHARS]) for r in results]
    repeated = max(texts.count(t) for t in set(texts))
    return "medium" if repeated >= max(3, len(calls) / 2) else None


def _lowest_common_ancestor(trace: TraceView, spans: list[SpanNode]) -> SpanNode | None:
    def chain(span: SpanNode) -> list[SpanNode]:
        out, node = [], trace.parent(span)
        while node is not None:
            out.append(node)
            node = trace.parent(node)
        return out[::-1]  # top first

    common: list[SpanNode] = chain(spans[0])
    for span in spans[1:]:
        other = chain(span)
        n = 0
        while n < min(len(common), len(other)) and common[n] is other[n]:
            n += 1
        common = common[:n]
    return common[-1] if common else None


def _answers_tool_trouble(trace: TraceView, llm: SpanNode) -> bool:
    """Whether this LLM call requests a tool call that follows an empty, missing or failed
    call of the same tool: that is the agent's reaction to tool trouble, which
    retry_loop and empty_tool_result judge (a wrapper may reformulate the request)."""
    for span in trace.after(llm):
        if span.kind == "tool":
            previous = previous_call(trace, span) if span.tool_name else None
            return previous is not None and outcome(trace, previous) is not None
        if span.kind == "llm":
            return False
    return False


@detector("repeated_output", severity="medium", scope="trace")
def repeated_output(trace: TraceView) -> Iterator[Hit]:
    """An LLM call whose output is identical (whitespace and case aside) to an earlier LLM
    output in the same trace: the model repeats itself. An output that requests a tool
    call again after that tool came back empty or failed is left to retry_loop and
    empty_tool_result. Needs outputs captured."""
    seen: dict[str, SpanNode] = {}
    for llm in trace.llms:
        if not llm.output or is_empty_result(llm.output):
            continue  # "None", "null", "[]": nothing was said, so nothing was repeated
        text = " ".join(llm.output.lower().split())
        first = seen.get(text)
        if first is None:
            seen[text] = llm
            continue
        if _answers_tool_trouble(trace, llm):
            continue
        yield Hit(llm.span_id, "LLM output repeats an earlier output word for word",
                  {"first_span_id": first.span_id, "output_chars": len(llm.output)},
                  follows=(first.span_id,))
