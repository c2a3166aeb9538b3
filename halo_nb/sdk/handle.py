"""The handle a span context yields: typed setters that write OpenInference and
OTel GenAI attributes side by side, so any OTLP backend reads the span."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.trace import Status, StatusCode

from ..ingest import rules
from ..schema import KINDS
from .values import to_attribute, to_text

SPAN_TYPES = KINDS
GENAI_OPERATIONS = {
    "llm": "chat",
    "embedding": "embeddings",
    "tool": "execute_tool",
    "agent": "invoke_agent",
}
_CLIENT_TYPES = {"llm", "embedding"}
# Chat histories can be long; input.value always holds all of it.
MAX_FLATTENED_MESSAGES = 64


def check_type(span_type: str) -> str:
    kind = str(span_type).lower()
    if kind not in SPAN_TYPES:
        raise ValueError(f"type: unknown span type {span_type!r}; use one of {', '.join(KINDS)}")
    return kind


def otel_kind(span_type: str) -> otel_trace.SpanKind:
    """GenAI conventions: model calls are CLIENT spans, the rest INTERNAL."""
    kinds = otel_trace.SpanKind
    return kinds.CLIENT if span_type in _CLIENT_TYPES else kinds.INTERNAL


def type_attributes(span_type: str) -> dict[str, str]:
    attrs = {rules.OPENINFERENCE_KIND: span_type.upper(), rules.HALO_KIND: span_type}
    if span_type in GENAI_OPERATIONS:
        attrs[rules.GENAI_OPERATION] = GENAI_OPERATIONS[span_type]
    return attrs


class SpanHandle:
    """One open span. Setters return the handle so calls can chain."""

    def __init__(self, otel_span: otel_trace.Span, span_type: str) -> None:
        self._span = otel_span
        self.type = span_type

    @property
    def otel_span(self) -> otel_trace.Span:
        return self._span

    @property
    def trace_id(self) -> str:
        return format(self._span.get_span_context().trace_id, "032x")

    @property
    def span_id(self) -> str:
        return format(self._span.get_span_context().span_id, "016x")

    @property
    def ended(self) -> bool:
        return not self._span.is_recording()

    def __repr__(self) -> str:
        name = getattr(self._span, "name", "?")
        return f"<SpanHandle {self.type} {name!r} span_id={self.span_id}>"

    def set_input(self, value: Any) -> SpanHandle:
        """What went in. For an LLM span a list of ``{"role", "content"}`` messages is also
        written as OpenInference ``llm.input_messages.*``; for a tool, as its arguments."""
        text = to_text(value)
        self._span.set_attribute("input.value", text)
        self._span.set_attribute("input.mime_type", _mime(value))
        if self.type == "tool":
            self._span.set_attribute("gen_ai.tool.call.arguments", text)
        elif self.type == "llm":
            self._set_messages("llm.input_messages", value)
        return self

    def set_output(self, value: Any) -> SpanHandle:
        """What came out (for a tool, its result; for an LLM, messages as in ``set_input``)."""
        text = to_text(value)
        self._span.set_attribute("output.value", text)
        self._span.set_attribute("output.mime_type", _mime(value))
        if self.type == "tool":
            self._span.set_attribute("gen_ai.tool.call.result", text)
        elif self.type == "llm":
            self._set_messages("llm.output_messages", value)
        return self

    def _set_messages(self, prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and "role" in value:
            value = [value]
        if not isinstance(value, (list, tuple)) or not value or not all(
                isinstance(m, Mapping) and "role" in m for m in value):
            return
        for index, message in enumerate(value[:MAX_FLATTENED_MESSAGES]):
            self._span.set_attribute(f"{prefix}.{index}.message.role", str(message["role"]))
            if message.get("content") is not None:
                self._span.set_attribute(f"{prefix}.{index}.message.content",
                                         to_text(message["content"]))

    def set_model(self, model: str, *, response_model: str | None = None,
                  provider: str | None = None) -> SpanHandle:
        """The requested model (and, when it differs, the one that answered)."""
        self._span.set_attribute("llm.model_name", model)
        self._span.set_attribute("gen_ai.request.model", model)
        if response_model is not None:
            self._span.set_attribute("gen_ai.response.model", response_model)
        if provider is not None:
            self._span.set_attribute("llm.provider", provider)
            self._span.set_attribute("gen_ai.provider.name", provider)
        return self

    def record_tokens(self, input_tokens: int | None = None, output_tokens: int | None = None,
                      total_tokens: int | None = None) -> SpanHandle:
        """Token usage of this span (sets, does not add); total derives from the parts."""
        if input_tokens is not None:
            self._span.set_attribute("llm.token_count.prompt", int(input_tokens))
            self._span.set_attribute("gen_ai.usage.input_tokens", int(input_tokens))
        if output_tokens is not None:
            self._span.set_attribute("llm.token_count.completion", int(output_tokens))
            self._span.set_attribute("gen_ai.usage.output_tokens", int(output_tokens))
        if total_tokens is None and input_tokens is not None and output_tokens is not None:
            total_tokens = int(input_tokens) + int(output_tokens)
        if total_tokens is not None:
            self._span.set_attribute("llm.token_count.total", int(total_tokens))
        return self

    def set_finish_reason(self, reason: str) -> SpanHandle:
        """Why the model stopped (``stop``, ``length``, ``tool_calls`` …)."""
        self._span.set_attribute("gen_ai.response.finish_reasons", [str(reason)])
        return self

    def set_tool(self, name: str | None = None, *, arguments: Any = None,
                 result: Any = None, call_id: str | None = None) -> SpanHandle:
        if name is not None:
            self._span.set_attribute("tool.name", name)
            self._span.set_attribute("gen_ai.tool.name", name)
        if arguments is not None:
            self._span.set_attribute("gen_ai.tool.call.arguments", to_text(arguments))
        if result is not None:
            self._span.set_attribute("gen_ai.tool.call.result", to_text(result))
        if call_id is not None:
            self._span.set_attribute("gen_ai.tool.call.id", call_id)
        return self

    def set_metadata(self, metadata: Mapping[str, Any] | None = None, **values: Any) -> SpanHandle:
        """Free-form metadata: one ``halo.metadata.<key>`` attribute per key, and the
        OpenInference ``metadata`` JSON object (merged with what was set before)."""
        merged = {**(metadata or {}), **values}
        if not merged:
            return self
        for key, value in merged.items():
            if value is not None:
                self._span.set_attribute(rules.HALO_METADATA_PREFIX + key, to_attribute(value))
        previous = _existing_json(self._span, "metadata")
        self._span.set_attribute("metadata", to_text({**previous, **merged}))
        return self

    def set_attributes(self, attributes: Mapping[str, Any] | None = None,
                       **values: Any) -> SpanHandle:
        """Raw attributes under their own names (complex values as JSON)."""
        for key, value in {**(attributes or {}), **values}.items():
            if value is not None:
                self._span.set_attribute(key, to_attribute(value))
        return self

    def annotate(self, **values: Any) -> SpanHandle:
        """Label this span: a ``halo.annotation`` event and ``halo.annotation.<key>`` attributes."""
        if not values:
            return self
        converted = {key: to_attribute(value) for key, value in values.items() if value is not None}
        self._span.add_event(rules.HALO_ANNOTATION_EVENT, converted)
        for key, value in converted.items():
            self._span.set_attribute(f"halo.annotation.{key}", value)
        return self

    def record_exception(self, error: BaseException) -> SpanHandle:
        """Record ``error`` as an exception event and mark the span failed."""
        self._span.record_exception(error)
        self.set_error(error_message(error))
        return self

    def set_error(self, message: str) -> SpanHandle:
        self._span.set_status(Status(StatusCode.ERROR, message))
        return self

    def set_ok(self) -> SpanHandle:
        self._span.set_status(Status(StatusCode.OK))
        return self

    def end(self, error: BaseException | None = None) -> None:
        """End the span: failed with ``error`` when given, else OK unless already marked."""
        if self.ended:
            warnings.warn(f"halo_nb: span {self.span_id} already ended", stacklevel=2)
            return
        if error is not None:
            self.record_exception(error)
        elif _status_unset(self._span):
            self.set_ok()
        self._span.end()


def error_message(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _status_unset(span: otel_trace.Span) -> bool:
    status = getattr(span, "status", None)
    return status is not None and status.status_code is StatusCode.UNSET


def _mime(value: Any) -> str:
    return "text/plain" if isinstance(value, str) else "application/json"


def _existing_json(span: otel_trace.Span, key: str) -> dict[str, Any]:
    current = getattr(span, "attributes", None) or {}
    try:
        value = json.loads(current.get(key, "{}"))
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
