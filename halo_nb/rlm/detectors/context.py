"""Context growth and truncation."""

from __future__ import annotations

from collections.abc import Iterator

from ..graph import SpanNode, TraceView
from ..registry import Hit, detector
from .common import agent_of

GROWTH_MIN_CALLS = 3
# A conversation that grows is normal: each turn appends its messages. It is a finding
# when the growth threatens the model's context window: the last call fills at least
# WINDOW_SHARE of the model's window (or LARGE_CONTEXT tokens when the window is not
# known) after growing GROWTH_MIN_RATIO times; or the input compounds (on average each
# call at least COMPOUNDING_STEP times the one before, to GROWTH_COMPOUND_RATIO times the
# first and COMPOUNDING_MIN_TOKENS), which reaches any window within a few more calls.
GROWTH_MIN_RATIO = 1.5
WINDOW_SHARE = 0.5
LARGE_CONTEXT = 32_000
COMPOUNDING_STEP = 1.5
GROWTH_COMPOUND_RATIO = 3.0
COMPOUNDING_MIN_TOKENS = 1_000
# Input context windows (tokens) by model-name prefix (the longest matching prefix wins).
CONTEXT_WINDOWS = {
    "gpt-3.5-turbo": 16_385, "gpt-4": 8_192, "gpt-4-32k": 32_768, "gpt-4-turbo": 128_000,
    "gpt-4o": 128_000, "gpt-4.1": 1_047_576, "gpt-4.5": 128_000, "gpt-5": 400_000,
    "o1": 200_000, "o3": 200_000, "o4": 200_000, "claude": 200_000, "gemini": 1_048_576,
    "mistral-large": 128_000, "llama-3": 8_192, "llama-3.1": 128_000, "llama-3.2": 128_000,
    "llama-3.3": 128_000, "qwen2.5": 32_768, "smollm2": 8_192,
}
TRUNCATION_REASONS = frozenset({"length", "max_tokens", "max_output_tokens", "model_length",
                                "token_limit", "context_length_exceeded"})
_CONTEXT_WORDS = ("context length", "context window", "maximum context", "truncated")


def context_window(model: str | None) -> int | None:
    """The model's input context window in tokens, if its family is known."""
    name = (model or "").lower().rsplit("/", 1)[-1]
    best = max((p for p in CONTEXT_WINDOWS if name.startswith(p)), key=len, default=None)
    return CONTEXT_WINDOWS[best] if best else None


def _threatening(run: list[SpanNode]) -> bool:
    first, last = run[0].tokens_in, run[-1].tokens_in
    if first <= 0:
        return False
    per_call = (last / first) ** (1 / (len(run) - 1))
    compounding = (per_call >= COMPOUNDING_STEP and last >= GROWTH_COMPOUND_RATIO * first
                   and last >= COMPOUNDING_MIN_TOKENS)
    window = context_window(run[-1].model)
    large = last >= (WINDOW_SHARE * window if window else LARGE_CONTEXT)
    return compounding or (large and last >= GROWTH_MIN_RATIO * first)


def rising_runs(trace: TraceView) -> list[list[SpanNode]]:
    """Runs of consecutive LLM calls of one agent whose input tokens rise strictly, at
    least GROWTH_MIN_CALLS long, whose growth threatens the context window (_threatening:
    half the model's window, or compounding growth)."""
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
            if len(run) >= GROWTH_MIN_CALLS and _threatening(run):
                runs.append(run)
            run = [call] if call is not None else []
    runs.sort(key=lambda r: (r[0].start_ns, r[0].span_id))
    trace.memo["rising_runs"] = runs
    return runs


@detector("context_growth", severity="medium", scope="trace")
def context_growth(trace: TraceView) -> Iterator[Hit]:
    """Input tokens rising across at least three consecutive LLM calls of one agent until
    they threaten the model's context window: half of it (32k tokens when the model is
    not known), or compounding growth (reported at the last call). Ordinary history
    growth (each turn adding its messages) is not reported."""
    for run in rising_runs(trace):
        last = run[-1]
        window = context_window(last.model)
        yield Hit(last.span_id,
                  f"input tokens grew {last.tokens_in / run[0].tokens_in:.1f}x over "
                  f"{len(run)} consecutive LLM calls",
                  {"tokens_in": [c.tokens_in for c in run], "calls": len(run),
                   "first_span_id": run[0].span_id,
                   "ratio": round(last.tokens_in / run[0].tokens_in, 2),
                   "context_window": window,
                   "window_share": round(last.tokens_in / window, 3) if window else None})


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
