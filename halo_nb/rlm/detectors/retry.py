"""Retry loops: the same tool called again with near-identical arguments after a call
that failed or came back empty."""

from __future__ import annotations

from collections.abc import Iterator

from ..graph import TraceView
from ..registry import Hit, detector
from .common import retry_of
from .errors import recovered


@detector("retry_loop", severity="medium", scope="trace")
def retry_loop(trace: TraceView) -> Iterator[Hit]:
    """A tool call that repeats the previous call of the same tool in the same loop (same
    parent span) with near-identical arguments (normalised similarity >= 0.85 and the
    same numbers) after that call failed or returned an empty or missing result. Without
    captured arguments only retries after errors are seen, and they are low when the run
    recovered (errors.recovered): calling a tool again after an error, with arguments
    nobody recorded, is how an agent fixes its call as often as how it loops."""
    attempts: dict[str, int] = {}
    for tool in trace.tools:
        found = retry_of(trace, tool)
        if found is None:
            continue
        previous, result, similarity = found
        attempt = attempts.get(previous.span_id, 1) + 1
        attempts[tool.span_id] = attempt
        how = ("called again (arguments not recorded)" if similarity is None
               else "retried with near-identical arguments")
        yield Hit(
            tool.span_id,
            f"{tool.tool_name} {how} after an {result} result (attempt {attempt})",
            {"tool": tool.tool_name, "previous_span_id": previous.span_id,
             "previous_outcome": result, "args_similarity": similarity, "attempt": attempt},
            key=f"after_{result}",
            follows=(previous.span_id,),
            severity="low" if similarity is None and recovered(trace, tool) else None,
        )
