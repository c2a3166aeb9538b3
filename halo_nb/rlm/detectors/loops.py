"""Agent loops and repeated identical LLM outputs."""

from __future__ import annotations

from collections.abc import Iterator

from ..graph import SpanNode, TraceView
from ..registry import Hit, detector
from ..walk import NodeContext
from .common import outcome, previous_call

LOOP_MIN_CALLS = 5


@detector("agent_loop", severity="high", scope="span",
          kinds=("agent", "chain", "guardrail", "evaluator", "unknown"))
def agent_loop(span: SpanNode, ctx: NodeContext) -> Hit | None:
    """A span under which one tool is called LOOP_MIN_CALLS (5) times or more: the agent
    cycles LLM -> tool without converging. Reported on the lowest span that loops
    (agent, chain or unknown spans: LLM and tool spans do not run loops)."""
    if any(s.signals.get("agent_loop") for s in ctx.child_summaries):
        return None
    counts: dict[str, list[SpanNode]] = {}
    for child in ctx.judged_children:
        if child.kind == "tool" and child.tool_name:
            counts.setdefault(child.tool_name, []).append(child)
    if not counts:
        return None
    tool, calls = max(counts.items(), key=lambda kv: (len(kv[1]), kv[0]))
    if len(calls) < LOOP_MIN_CALLS:
        return None
    distinct = len({c.tool_args for c in calls if c.tool_args is not None}) or None
    return Hit(span.span_id, f"{tool} called {len(calls)} times under one {span.kind} span",
               {"tool": tool, "calls": len(calls), "distinct_args": distinct,
                "call_span_ids": [c.span_id for c in calls[:20]]},
               key=tool, follows=tuple(c.span_id for c in calls))


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
        if not llm.output or not llm.output.strip():
            continue
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
