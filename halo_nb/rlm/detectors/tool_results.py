"""Empty or missing tool results the agent did not handle."""

from __future__ import annotations

from collections.abc import Iterator

from ..graph import TraceView
from ..registry import Hit, detector
from ..text import acknowledges_absence, args_similarity, near_identical
from .common import next_call, outcome


@detector("empty_tool_result", severity="medium", scope="trace")
def empty_tool_result(trace: TraceView) -> Iterator[Hit]:
    """A tool returned an empty result ("", [], {}, null, "no results") or none at all,
    and the agent went on as if it had data: the next call of that tool in the same loop
    (same parent span), if any, repeats near-identical arguments instead of reformulating,
    and nothing the agent said before it acknowledges that nothing was found. Needs
    content capture (results are content)."""
    if not trace.capture_on:
        return
    for tool in trace.tools:
        state = outcome(trace, tool)
        if state not in ("empty", "missing"):
            continue
        following = next_call(trace, tool)
        similarity = None
        if following is not None:
            similarity = args_similarity(tool.tool_args, following.tool_args)
            if similarity is not None and not near_identical(tool.tool_args,
                                                             following.tool_args):
                continue  # the agent reformulated: handled
        stop = following.start_ns if following is not None else None
        reaction = []
        for span in trace.after(tool):
            if stop is not None and span.start_ns >= stop:
                break
            if span.kind != "tool":
                reaction.append(span)
        if following is None:
            reaction.extend(trace.top)  # the agent's final answer
        if any(acknowledges_absence(s.output) for s in reaction):
            continue
        preview = None if tool.tool_result is None else tool.tool_result[:40]
        yield Hit(
            tool.span_id,
            f"{tool.tool_name or tool.name} returned {'no' if state == 'missing' else 'an empty'}"
            " result and the agent carried on without handling it",
            {"tool": tool.tool_name, "result": state, "result_preview": preview,
             "next_call_span_id": following.span_id if following is not None else None,
             "next_call_args_similarity": similarity},
            key=state,
        )
