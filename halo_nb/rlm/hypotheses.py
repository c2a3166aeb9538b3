"""Root-cause hypotheses and suggested fixes for clusters, from rules.

The first rule whose detectors all occur in a cluster's causal chain (and whose key
test passes) names the cluster and writes its hypothesis and fix. Detectors added
through the plugin API can bring their own text (``@detector(..., hypothesis=, fix=)``).

Confidence (0..1) comes from the statistics, not the model::

    confidence = match * n / (n + 3) + lift bonus
    match      1.0 rule written for this chain, 0.8 plugin text, 0.5 generic
    n          traces in the cluster (more recurrences, more confidence)
    lift bonus +min(0.15, 0.05 * (lift - 1)) if failures are more frequent in the
               cluster than overall, -0.1 if less, 0 if unknown; clamped to 0..1.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from . import registry


@dataclass(frozen=True)
class Rule:
    name: str
    detectors: tuple[str, ...]
    title: str
    hypothesis: str
    fix: str
    keys: tuple[str, ...] = ()  # signature keys of the first detector, any of these


RULES: tuple[Rule, ...] = (
    Rule("retry_after_empty", ("retry_loop",),
         "tool retry loop after empty results",
         "The agent prompt does not instruct query reformulation on empty tool responses: "
         "when {tool} returns nothing, the agent calls it again with near-identical arguments.",
         "Tell the agent what to do on empty results (reformulate the query, broaden it, or "
         "stop and say so), or reformulate in the {tool} wrapper before returning an empty "
         "result.", keys=("after_empty", "after_missing")),
    Rule("retry_after_error", ("retry_loop",),
         "tool retry loop after errors",
         "Failed {tool} calls are retried blindly with the same arguments, whether the "
         "error is transient or permanent.",
         "Retry only transient errors, with backoff and a cap; return permanent errors to "
         "the agent as a message it can act on (what failed, what to change).",
         keys=("after_error",)),
    Rule("agent_loop", ("agent_loop",),
         "agent loops on one tool",
         "The agent has no stopping condition for {tool}: it keeps calling it without "
         "converging on an answer.",
         "Cap tool calls per run, state in the prompt when to stop and answer, and show "
         "the agent the calls it has already made."),
    Rule("context_growth", ("context_growth",),
         "context grows every step",
         "The conversation history grows with every step (tool outputs appended verbatim) "
         "until the model's context or output limit is reached.",
         "Summarise or trim earlier turns and large tool outputs, cap the size of tool "
         "results, and keep only what the next step needs."),
    Rule("truncation", ("truncation",),
         "LLM output truncated",
         "The output limit (max_tokens) at {path} is too low for the answers requested, "
         "so replies are cut off mid-way.",
         "Raise max_tokens or ask for shorter answers, and handle finish_reason=length "
         "(continue, or retry with a shorter prompt) instead of using the cut answer."),
    Rule("empty_result_unhandled", ("empty_tool_result",),
         "empty tool results not handled",
         "The agent treats an empty {tool} result as if it had data and answers without "
         "evidence.",
         "Return an explicit 'no results for <query>' message from the {tool} wrapper and "
         "tell the agent to say so (or search differently) when it finds nothing."),
    Rule("hallucinated_tool", ("hallucinated_tool",),
         "hallucinated tool",
         "The model calls {key}, a tool it was never offered: tool names in the prompt or "
         "examples are stale or ambiguous.",
         "Remove mentions of {key} from the prompt and examples (the model was offered "
         "{declared}); reject undeclared tool calls with an error listing the valid ones, or "
         "use constrained tool calling."),
    Rule("tool_schema_violation", ("tool_schema_violation",),
         "tool arguments break the schema",
         "The model produces {tool} arguments that break its declared schema ({key}): the "
         "parameter description is unclear or the schema changed under the prompt.",
         "Clarify parameter names and types in the tool description, validate arguments "
         "before running the tool and return the validation error to the model, or use "
         "strict structured tool calling."),
    Rule("repeated_output", ("repeated_output",),
         "LLM repeats itself",
         "The model repeats an earlier output word for word: between the two calls its "
         "input gained nothing new (the observation was not fed back).",
         "Make sure each turn appends the new observation to the prompt; detect identical "
         "consecutive outputs and re-prompt or stop."),
    Rule("error_status", ("error_status",),
         "calls fail",
         "{path} fails with {key}: the call is not guarded against this failure.",
         "Find why {tool} fails in these runs ({message}) and handle {exception} where it "
         "is called: return it to the agent as a message it can act on (what failed, what "
         "to change)."),
    Rule("failure_words", ("failure_words",),
         "failures hidden behind OK status",
         "{path} reports a failure ({key}) in its payload while its status says OK, so the "
         "failure is passed on as data and the agent proceeds.",
         "Map payload failures (success=false, rate limits, timeouts, exceeded limits) to an "
         "error status in the wrapper and handle them: back off on rate limits, retry "
         "timeouts, stop cleanly at turn limits."),
    Rule("never_ended", ("never_ended",),
         "runs hang",
         "Runs hang at {path}: the span never ends (a blocking call without a timeout, or "
         "the process died before the span closed).",
         "Put a timeout on the call, end spans in finally blocks (context managers) and "
         "flush the exporter on shutdown."),
    Rule("no_output", ("no_output",),
         "runs end without an answer",
         "The agent finishes without producing an answer: an exit path (error, turn limit) "
         "skips the final response.",
         "Make every exit path produce a final answer, including errors and turn limits, "
         "and record it as the root span's output."),
    Rule("latency_outlier", ("latency_outlier",),
         "latency outliers",
         "{path} is occasionally far slower than its usual time: a slow dependency or a "
         "missing timeout.",
         "Set a timeout on the call, add a cache or fallback, and check the dependency for "
         "the slow runs."),
    Rule("token_outlier", ("token_outlier",),
         "token outliers",
         "Some calls at {path} generate far more tokens than usual: runaway or unbounded "
         "generation.",
         "Set max_tokens, ask for concise output and add stop sequences."),
    Rule("trace_integrity", ("trace_integrity",),
         "broken traces",
         "The instrumentation loses or misorders spans ({key}): trace context is not "
         "propagated, parent spans are not exported, or clocks disagree.",
         "Propagate the trace context across threads and processes, end and flush every "
         "span (including parents) before exit, and take timestamps from one clock."),
)
_GENERIC = Rule("generic", (), "recurring {detector}",
                "{detector} recurs at {path} across runs.",
                "Inspect the evidence spans of this cluster to find what they have in common.")


def match_rule(detectors_in_chain: list[str], chain: list[str]) -> tuple[Rule, float]:
    """The rule for a chain and how well it matches (1.0 written for it, 0.8 plugin, 0.5)."""
    keys = {sig.split("|")[0]: (sig.split("|")[2] if sig.count("|") >= 2 else "")
            for sig in reversed(chain)}
    for rule in RULES:
        if all(d in detectors_in_chain for d in rule.detectors):
            if rule.keys and keys.get(rule.detectors[0]) not in rule.keys:
                continue
            return rule, 1.0
    for name in detectors_in_chain:
        det = registry.get(name)
        if det is not None and det.hypothesis:
            return Rule(f"plugin:{name}", (name,), f"{name}", det.hypothesis,
                        det.fix or _GENERIC.fix), 0.8
    return _GENERIC, 0.5


def confidence(match: float, trace_count: int, lift: float | None) -> float:
    value = match * trace_count / (trace_count + 3)
    if lift is not None:
        value += min(0.15, 0.05 * (lift - 1)) if lift > 1 else (-0.1 if lift < 1 else 0.0)
    return round(min(1.0, max(0.0, value)), 3)


def _facts(cluster: dict[str, Any], head: dict[str, Any]) -> dict[str, str]:
    evidence = json.loads(head["evidence"]) if head.get("evidence") else {}
    path = cluster["span_path"]
    tool = evidence.get("tool") or next(
        (part[5:] for part in reversed(path.split("/")) if part.startswith("tool:")), "the tool")
    parts = head["signature"].split("|")
    key = parts[2] if len(parts) > 2 else head["detector"]
    # the message itself, without a traceback some frameworks append (LangChain)
    message = str(evidence.get("status_message") or "").split("Traceback (most recent")[0]
    return {"tool": str(tool), "path": path, "key": key, "detector": head["detector"],
            "exception": str(evidence.get("exception_type") or "the error"),
            "message": " ".join(message.split())[:160],
            "declared": ", ".join(evidence.get("declared_tools") or []) or "the declared tools"}


# Fixes for a failure's kind, matched in order on the exception type and status message
# of the headline finding (error_status, retry_loop after errors) or on the failure word
# (failure_words): the same detector gets the fix its failure needs.
_ERROR_FIXES: tuple[tuple[str, str], ...] = (
    (r"permission|forbidden|unauthori[sz]ed|access denied|eacces|\b40[13]\b",
     "{tool} is refused access ({exception}: {message}); retrying cannot help. Grant the "
     "access it needs, or check what the agent asks for before the call (allowed paths, "
     "scopes) and tell the agent the request is not allowed so it stops asking."),
    (r"timeout|timed out|deadline",
     "Give {tool} a timeout that fits the work and one bounded retry with backoff; on a "
     "second timeout return a clear 'unavailable' message the agent can answer with."),
    (r"rate.?limit|too many requests|\b429\b|quota",
     "Back off on {tool}'s rate limit (honour Retry-After, add jitter), cap concurrent "
     "calls, and cache repeated requests."),
    (r"not ?found|no such|filenotfound|keyerror|\b404\b|enoent",
     "{tool} is asked for something that does not exist ({message}): validate the "
     "arguments before the call and return the miss to the agent as a result it can act "
     "on, not an exception."),
    (r"valid|schema|typeerror|valueerror|json|parse|argument",
     "Validate {tool}'s arguments against its schema before running it and return the "
     "validation error ({exception}) to the model so it can correct the call."),
    (r"connection|unreachable|refused|reset|dns|network|\b50[234]\b",
     "Retry {tool}'s transient connection failures with backoff and a cap, and fall back "
     "or answer without it when the service stays down."),
)
_WORD_FIXES = {
    "rate_limit": "Map {tool}'s rate-limit payloads to an error status and back off "
                  "(Retry-After, jitter) instead of passing them on as data.",
    "quota": "Map {tool}'s quota payloads to an error status, stop calling it when the quota "
             "is spent and tell the user, instead of passing the payload on as data.",
    "timeout": "Turn {tool}'s timeout payloads into an error status and retry once with "
               "backoff, instead of passing them on as data.",
    "max_turns": "The run stops at its turn limit without an answer: raise the limit only "
                 "if runs converge, otherwise stop loops earlier and answer with what is known.",
    "success_false": "Check the success flag in {tool}'s payload and raise (or return a "
                     "clear error message) when it is false, instead of passing it on as data.",
}


def specific_fix(rule: Rule, facts: dict[str, str]) -> str:
    """The rule's fix, made specific to the failure where its kind is known: the
    exception type and status message of an error, the failure word of a payload."""
    if rule.name in ("error_status", "retry_after_error"):
        text = f"{facts['exception']} {facts['message']}".lower()
        for pattern, fix in _ERROR_FIXES:
            if re.search(pattern, text):
                return fix.format_map(_Blank(facts))
    if rule.name == "failure_words" and facts["key"] in _WORD_FIXES:
        return _WORD_FIXES[facts["key"]].format_map(_Blank(facts))
    return rule.fix.format_map(_Blank(facts))


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def hypothesis_row(cluster: dict[str, Any], head: dict[str, Any],
                   findings_by_trace: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    rule, match = match_rule(cluster["detectors"], cluster["causal_chain"])
    facts = _Blank(_facts(cluster, head))
    examples = cluster["example_trace_ids"]
    chain = set(cluster["causal_chain"])
    spans = [f["span_id"] for t in examples for f in findings_by_trace.get(t, ())
             if f["signature"] in chain]
    return {
        "cluster_id": cluster["cluster_id"],
        "title": rule.title.format_map(facts),
        "hypothesis": rule.hypothesis.format_map(facts),
        "suggested_fix": specific_fix(rule, facts),
        "confidence": confidence(match, cluster["trace_count"], cluster["lift"]),
        "rule": rule.name,
        "narrative": None,
        "evidence_trace_ids": list(examples),
        "evidence_span_ids": list(dict.fromkeys(spans)),
    }
