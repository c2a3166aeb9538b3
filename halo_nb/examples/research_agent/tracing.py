"""The two ways the sample agent is traced, behind one small recorder interface.

* ``HaloRecorder`` — the halo_nb SDK: ``start_trace`` / ``span`` / ``end_trace``; spans
  land in this kernel's store directly (or go to ``sdk.configure_export``'s endpoint).
* ``OpenInferenceRecorder`` — third-party instrumentation: plain OpenTelemetry spans for
  the agent and its tool, the OpenInference OpenAI instrumentor for every LLM call, all
  exported over OTLP/HTTP to the halo_nb collector.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from openinference.semconv.trace import OpenInferenceSpanKindValues, SpanAttributes
from opentelemetry.trace import Status, StatusCode, Tracer

from .search import WEB_SEARCH_TOOL

AGENT_NAME = "research_agent"


class AgentSpan(Protocol):
    trace_id: str

    def finish(self, answer: str | None) -> None: ...
    def fail(self, error: BaseException) -> None: ...


class LlmSpan(Protocol):
    def record(self, response: Any) -> None: ...


class ToolSpan(Protocol):
    def record(self, result: str, **metadata: Any) -> None: ...


class Recorder(Protocol):
    def agent(self, question: str, metadata: Mapping[str, Any]
              ) -> AbstractContextManager[AgentSpan]: ...
    def llm(self, request: Mapping[str, Any], tool_choice: str
            ) -> AbstractContextManager[LlmSpan]: ...
    def tool(self, name: str, arguments: Mapping[str, Any], call_id: str | None
             ) -> AbstractContextManager[ToolSpan]: ...


def _output_of(message: Any) -> str:
    """The assistant message as text: its content, else its tool calls as JSON."""
    if message.tool_calls:
        return json.dumps([call.model_dump() for call in message.tool_calls])
    return message.content or ""


# --- variant 1: the halo_nb SDK ------------------------------------------------------------


class _HaloAgentSpan:
    def __init__(self, trace: Any) -> None:
        self.trace = trace
        self.trace_id = trace.trace_id

    def finish(self, answer: str | None) -> None:
        from halo_nb import sdk

        sdk.end_trace(self.trace, output=answer)

    def fail(self, error: BaseException) -> None:
        from halo_nb import sdk

        sdk.end_trace(self.trace, error=error)


class _HaloLlmSpan:
    def __init__(self, handle: Any, model: str) -> None:
        self.handle = handle
        self.model = model

    def record(self, response: Any) -> None:
        choice = response.choices[0]
        self.handle.set_output(_output_of(choice.message))
        if response.model:
            self.handle.set_model(self.model, response_model=response.model)
        if response.usage is not None:
            self.handle.record_tokens(response.usage.prompt_tokens,
                                      response.usage.completion_tokens,
                                      response.usage.total_tokens)
        if choice.finish_reason:
            self.handle.set_finish_reason(choice.finish_reason)


class _HaloToolSpan:
    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def record(self, result: str, **metadata: Any) -> None:
        self.handle.set_output(result)
        self.handle.set_metadata(metadata)


class HaloRecorder:
    """Traces with the halo_nb SDK (``start_trace`` / ``span`` / ``end_trace``)."""

    def __init__(self) -> None:
        self._trace: Any = None

    @contextmanager
    def agent(self, question: str, metadata: Mapping[str, Any]) -> Iterator[_HaloAgentSpan]:
        from halo_nb import sdk

        self._trace = sdk.start_trace(AGENT_NAME, input=question, metadata=dict(metadata))
        try:
            yield _HaloAgentSpan(self._trace)
        finally:
            if not self._trace.ended:
                sdk.end_trace(self._trace)
            self._trace = None

    @contextmanager
    def llm(self, request: Mapping[str, Any], tool_choice: str) -> Iterator[_HaloLlmSpan]:
        from halo_nb import sdk

        model = request["model"]
        with sdk.span(self._trace, name=f"chat {model}", type="llm") as handle:
            handle.set_model(model)
            handle.set_input(request["messages"])
            handle.set_attributes({
                "gen_ai.request.temperature": request["temperature"],
                "gen_ai.request.max_tokens": request["max_tokens"],
                "gen_ai.request.seed": request["seed"],
                # The tool is declared to the model (natively or in the prompt).
                "llm.tools.0.tool.json_schema": json.dumps(WEB_SEARCH_TOOL),
                "halo.tool_choice": tool_choice,
            })
            yield _HaloLlmSpan(handle, model)

    @contextmanager
    def tool(self, name: str, arguments: Mapping[str, Any], call_id: str | None
             ) -> Iterator[_HaloToolSpan]:
        from halo_nb import sdk

        with sdk.span(self._trace, name=name, type="tool") as handle:
            handle.set_input(dict(arguments))
            handle.set_tool(name, arguments=dict(arguments), call_id=call_id)
            yield _HaloToolSpan(handle)


# --- variant 2: OpenTelemetry + the OpenInference OpenAI instrumentor ---------------------


class _OtelAgentSpan:
    def __init__(self, span: Any) -> None:
        self.span = span
        self.trace_id = format(span.get_span_context().trace_id, "032x")

    def finish(self, answer: str | None) -> None:
        if answer is not None:
            self.span.set_attribute(SpanAttributes.OUTPUT_VALUE, answer)
        self.span.set_status(Status(StatusCode.OK))

    def fail(self, error: BaseException) -> None:
        self.span.record_exception(error)
        self.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


class _InstrumentedLlmSpan:
    """The OpenInference instrumentor records the call itself."""

    def record(self, response: Any) -> None:
        return None


class _OtelToolSpan:
    def __init__(self, span: Any) -> None:
        self.span = span

    def record(self, result: str, **metadata: Any) -> None:
        self.span.set_attribute(SpanAttributes.OUTPUT_VALUE, result)
        self.span.set_attribute(SpanAttributes.OUTPUT_MIME_TYPE, "application/json")
        self.span.set_attribute(SpanAttributes.METADATA, json.dumps(metadata))
        self.span.set_status(Status(StatusCode.OK))


class OpenInferenceRecorder:
    """Agent and tool spans with OpenInference attributes on a plain OpenTelemetry tracer;
    LLM spans come from ``OpenAIInstrumentor`` (see ``batch.openinference_tracing``)."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    @contextmanager
    def agent(self, question: str, metadata: Mapping[str, Any]) -> Iterator[_OtelAgentSpan]:
        attributes = {
            SpanAttributes.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.AGENT.value,
            SpanAttributes.INPUT_VALUE: question,
            SpanAttributes.METADATA: json.dumps(dict(metadata)),
        }
        with self.tracer.start_as_current_span(AGENT_NAME, attributes=attributes,
                                               record_exception=False,
                                               set_status_on_exception=False) as span:
            yield _OtelAgentSpan(span)

    @contextmanager
    def llm(self, request: Mapping[str, Any], tool_choice: str) -> Iterator[_InstrumentedLlmSpan]:
        yield _InstrumentedLlmSpan()

    @contextmanager
    def tool(self, name: str, arguments: Mapping[str, Any], call_id: str | None
             ) -> Iterator[_OtelToolSpan]:
        attributes = {
            SpanAttributes.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.TOOL.value,
            SpanAttributes.TOOL_NAME: name,
            SpanAttributes.INPUT_VALUE: json.dumps(dict(arguments)),
            SpanAttributes.INPUT_MIME_TYPE: "application/json",
        }
        if call_id:
            attributes["gen_ai.tool.call.id"] = call_id
        with self.tracer.start_as_current_span(name, attributes=attributes) as span:
            yield _OtelToolSpan(span)
