"""Failure words in outputs, results and attributes of spans whose status says nothing
went wrong (success=false, timeout, rate limit, exceeded, max turns...)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from ..graph import SpanNode, TraceView
from ..registry import Hit, detector
from ..text import failure_terms, value_texts
from .errors import recovered

# Attributes that hold what went *into* a call (prompts, tool definitions, arguments) or
# duplicate a frame column already scanned; a failure word there is not a failure signal.
_SKIPPED_PREFIXES = ("input.", "output.", "gen_ai.input", "gen_ai.prompt", "gen_ai.output",
                     "gen_ai.completion", "gen_ai.system_instructions", "gen_ai.request.",
                     "gen_ai.tool.definitions", "gen_ai.tool.call.", "llm.input_messages",
                     "llm.prompt", "llm.tools", "llm.invocation_parameters",
                     "traceloop.entity.input", "traceloop.entity.output", "halo.tools",
                     "pydantic_ai.all_messages", "logfire.", "final_result")
# Attributes holding request settings or schemas (pydantic-ai's model_request_parameters:
# {"timeout": null, ...}): their words name knobs, not failures.
_SKIPPED_PARTS = ("parameters", "schema", "mime_type")


def _value_terms(text: str | None) -> list[str]:
    """Failure terms in the values of a JSON document (or in plain text): never in its
    keys, so {"timeout": null} says nothing while {"status": "timeout"} does."""
    if not text:
        return []
    found: list[str] = []
    for _, value in value_texts(text):
        found.extend(t for t in failure_terms(value) if t not in found)
    return found


def _terms(span: SpanNode) -> dict[str, str]:
    """Failure terms on this span -> where they were found."""
    found: dict[str, str] = {}
    fields = (("status_message", span.status_message), ("output", span.output),
              ("tool_result", span.tool_result))
    for where, text in fields:
        for term in _value_terms(text):
            found.setdefault(term, where)
    for key, value in sorted(span.attrs.items()):
        if (key.startswith(_SKIPPED_PREFIXES) or value is None
                or any(part in key for part in _SKIPPED_PARTS)):
            continue
        text = value if isinstance(value, str) else json.dumps({key.rsplit(".", 1)[-1]: value})
        for term in _value_terms(text):
            found.setdefault(term, f"attribute {key}")
    if span.failed:
        for event in span.event_list:
            for term in failure_terms(json.dumps(event.get("attributes") or {})):
                found.setdefault(term, "exception")
    return found


@detector("failure_words", severity="medium", scope="trace")
def failure_words(trace: TraceView) -> Iterator[Hit]:
    """Failure vocabulary (success=false, timeout, rate limit, quota, exceeded, max
    turns, "failed to") in the values of a span's output, tool result, status message or
    attributes (never in JSON keys or request parameters) while its status is not ERROR.
    Each term is reported where it first appeared (in end-time order); later spans that
    only repeat it are listed as echoes. Terms on
    failed spans are left to error_status, and their echoes are not reported. Low in an
    agent's own words (not a tool's result) when the run recovered past them
    (errors.recovered): agents reason aloud about what failed and try another way."""
    candidates = [s for s in trace.spans if s.fw_candidate]
    if not candidates:
        return
    candidates.sort(key=lambda s: (s.end_ns if s.end_ns is not None else 2**63, s.start_ns,
                                   s.span_id))
    first_seen: dict[str, SpanNode] = {}
    reported: list[tuple[SpanNode, dict[str, str], list[str]]] = []
    echoes: dict[str, list[str]] = {}
    for span in candidates:
        terms = _terms(span)
        new = [t for t in terms if t not in first_seen]
        for term in terms:
            if term in first_seen:
                echoes.setdefault(first_seen[term].span_id, []).append(span.span_id)
            else:
                first_seen[term] = span
        if new and not span.failed:
            reported.append((span, terms, new))
    for span, terms, new in reported:
        follows = tuple(first_seen[t].span_id for t in terms if t not in new)
        yield Hit(span.span_id,
                  f"failure words without an error status: {', '.join(sorted(terms))}",
                  {"terms": sorted(terms), "where": {t: terms[t] for t in sorted(terms)},
                   "status": span.status, "echo_span_ids": sorted(set(echoes.get(span.span_id,
                                                                                  [])))},
                  key=new[0], follows=follows,
                  severity="low" if span.kind != "tool" and recovered(trace, span) else None)
