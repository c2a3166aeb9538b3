"""The attribute rulebook: how OpenInference, OTel GenAI, Traceloop and the halo SDK spell
the fields of the span frame, as data. Both decoders read these tables (the Python
reference directly, the native one through ``otlp._native_tables``), so a new alias or
convention is one edit here (docs/architecture.md, "Adding an attribute alias")."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..schema import KINDS

# Kind sources, tried in the order of KIND_SOURCES below (docs/architecture.md).
OPENINFERENCE_KIND = "openinference.span.kind"
GENAI_OPERATION = "gen_ai.operation.name"
TRACELOOP_KIND = "traceloop.span.kind"
HALO_KIND = "halo.span.type"

GENAI_OPERATION_KINDS = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "completion": "llm",
    "embeddings": "embedding",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
}
TRACELOOP_KINDS = {
    "workflow": "chain",
    "task": "chain",
    "agent": "agent",
    "tool": "tool",
    "llm": "llm",
}

# Each kind source: an attribute and how its (lower-cased) value maps to a frame kind;
# None maps a value that is itself a frame kind to that kind. The first that maps wins;
# then a model attribute means "llm"; else "unknown".
# OpenInference kinds are the frame's kinds, plus PROMPT (a prompt template rendered)
# and DECISION (a routing decision): steps of a chain.
OPENINFERENCE_KINDS = {**{kind: kind for kind in KINDS}, "prompt": "chain", "decision": "chain"}

KIND_SOURCES: tuple[tuple[str, Mapping[str, str] | None], ...] = (
    (OPENINFERENCE_KIND, OPENINFERENCE_KINDS),
    (GENAI_OPERATION, GENAI_OPERATION_KINDS),
    (TRACELOOP_KIND, TRACELOOP_KINDS),
    (HALO_KIND, None),
)

MODEL = ("gen_ai.request.model", "llm.model_name", "llm.request.model_name",
         "gen_ai.response.model", "llm.response.model_name")
TOKENS_IN = ("gen_ai.usage.input_tokens", "llm.token_count.prompt", "gen_ai.usage.prompt_tokens")
TOKENS_OUT = (
    "gen_ai.usage.output_tokens",
    "llm.token_count.completion",
    "gen_ai.usage.completion_tokens",
)
TOKENS_TOTAL = ("llm.token_count.total", "gen_ai.usage.total_tokens")
TOOL_NAME = ("gen_ai.tool.name", "tool.name")
TOOL_ARGS = ("gen_ai.tool.call.arguments",)
TOOL_RESULT = ("gen_ai.tool.call.result",)
# A tool span without the tool keys above takes its arguments and result from these
# (OpenInference input/output, traceloop's entity input/output) and its tool name from
# its span name (OpenInference JS's traceTool names the span and nothing else).
TOOL_ARGS_FALLBACK = ("input.value", "traceloop.entity.input")
TOOL_RESULT_FALLBACK = ("output.value", "traceloop.entity.output")
INPUT = ("input.value", "gen_ai.input.messages", "gen_ai.prompt", "traceloop.entity.input")
# final_result: pydantic-ai's agent run span
OUTPUT = ("output.value", "gen_ai.output.messages", "gen_ai.completion", "traceloop.entity.output",
          "final_result")
FINISH_REASON = ("gen_ai.response.finish_reasons", "llm.finish_reason", "halo.finish_reason")
SERVICE_NAME = "service.name"
# An error span without a status message takes the first exception event's message.
EXCEPTION_EVENT = "exception"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_TYPE = "exception.type"

# Attributes the halo SDK writes beside the OpenInference / GenAI ones.
HALO_METADATA_PREFIX = "halo.metadata."
HALO_ANNOTATION_EVENT = "halo.annotation"
HALO_TRACE_ENDED = "halo.trace.ended"

_KINDS = frozenset(KINDS)


def first(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    """The value of the first key present (and not None) in attrs."""
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            return value
    return None


def span_kind(attrs: Mapping[str, Any]) -> str:
    """The frame's kind for a span, from its attributes, by KIND_SOURCES in order."""
    for key, mapping in KIND_SOURCES:
        value = attrs.get(key)
        if not isinstance(value, str):
            continue
        value = value.lower()
        kind = value if mapping is None and value in _KINDS else (mapping or {}).get(value)
        if kind is not None:
            return kind
    if first(attrs, MODEL) is not None:
        return "llm"
    return "unknown"


def as_text(value: Any) -> str | None:
    """Text for a frame column: strings as they are, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def as_int(value: Any) -> int | None:
    """A count as an int64: ints, numeric text and floats (truncated); None for anything
    else, including what an int64 column cannot hold (inf, nan, 1e20)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if INT64_MIN <= number <= INT64_MAX else None


def add_counts(a: int | None, b: int | None) -> int | None:
    """a + b, where a missing count is 0 and a sum beyond int64 is unknown (None)."""
    total = (a or 0) + (b or 0)
    return total if INT64_MIN <= total <= INT64_MAX else None


def finish_reason(attrs: Mapping[str, Any]) -> str | None:
    value = first(attrs, FINISH_REASON)
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return None if value is None else str(value)

