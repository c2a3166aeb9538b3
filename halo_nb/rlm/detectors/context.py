"""Context growth and truncation."""

from __future__ import annotations

from collections.abc import Iterator

from ..graph import SpanNode, TraceView
from ..registry import Hit, detector
from .common import agent_of

GROWTH_MIN_CALLS = 3
GROWTH_MIN_RATIO = 3.0
TRUNCATION_REASONS = frozenset({"length", "max_tokens", "max_output_tokens", "model_length",
                                "token_limit", "context_length_exceeded"})
_CONTEXT_WORDS = ("context length", "context window", "maximum context", "truncated")


def rising_runs(trace: TraceView) -> list[list[SpanNode]]:
    """Runs of consecutive LLM calls of one agent whose input tokens rise strictly, at
    least GROWTH_MIN_CALLS long and ending at GROWTH_MIN_RATIO times where they started."""
    runs = trace.memo.get("rising_runs")
    if runs is not None:
        return runs
    runs = []
    by_agent: dict[str, list[SpanNode]] = {}
    for llm in trace.llms:
        if llm.tokens_in is not None:
            by_agent.setdefault(agent_of(trace, llm), []).append(llm)
    for calls in by_agent.values():
        run = calls[:1]
        for call in calls[1:] + [None]:
            if call is not None and call.tokens_in > run[-1].tokens_in:
                run.append(call)
                continue
            if (len(run) >= GROWTH_MIN_CALLS and run[0].tokens_in > 0
                    and run[-1].tokens_in >= GROWTH_MIN_RATIO * run[0].tokens_in):
                runs.append(run)
            run = [call] if call is not None else []
    runs.sort(key=lambda r: (r[0].start_ns, r[0].span_id))
    trace.memo["rising_runs"] = runs
    return runs


@detector("context_growth", severity="medium", scope="trace")
def context_growth(trace: TraceView) -> Iterator[Hit]:
    """Input tokens rising across at least three consecutive LLM calls of one agent to at
    least three times the first: the conversation keeps growing (reported at the last call)."""
    for run in rising_runs(trace):
        last = run[-1]
        yield Hit(last.span_id,
                  f"input tokens grew {last.tokens_in / run[0].tokens_in:.1f}x over "
                  f"{len(run)} consecutive LLM calls",
                  {"tokens_in": [c.tokens_in for c in run], "calls": len(run),
                   "first_span_id": run[0].span_id,
                   "ratio": round(last.tokens_in / run[0].tokens_in, 2)})


@detector("truncation", severity="medium", scope="trace")
def truncation(trace: TraceView) -> Iterator[Hit]:
    """An LLM call cut short: finish_reason=length (or max_tokens and similar), or a status
    message about the context length or truncation."""
    runs = rising_runs(trace)
    for llm in trace.llms:
        reason = (llm.finish_reason or "").strip().lower()
        message = (llm.status_message or "").lower()
        if reason not in TRUNCATION_REASONS and not any(w in message for w in _CONTEXT_WORDS):
            continue
        follows = tuple(r[-1].span_id for r in runs
                        if r[-1] is not llm and r[0].start_ns <= llm.start_ns
                        and agent_of(trace, r[0]) == agent_of(trace, llm))
        yield Hit(llm.span_id,
                  f"LLM output truncated (finish_reason={llm.finish_reason or 'n/a'})",
                  {"finish_reason": llm.finish_reason, "tokens_in": llm.tokens_in,
                   "tokens_out": llm.tokens_out, "status_message": llm.status_message},
                  key=reason or "context_length", follows=follows)
