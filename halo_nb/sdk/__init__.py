"""The halo trace SDK for Python agents, on opentelemetry-sdk.

    t = start_trace("support-bot", input=question)
    with span(t, name="plan", type="llm", model="gpt-4o-mini") as s:
        s.set_output(answer).record_tokens(input_tokens=812, output_tokens=64)
    end_trace(t, output=answer)

Spans carry OpenInference and OTel GenAI attributes (plus ``halo.span.type``), so
any OTLP backend reads them. By default they go straight into this kernel's span
store; ``configure_export(endpoint=...)`` or the ``OTEL_EXPORTER_OTLP_*`` variables
send them over OTLP/HTTP instead.
"""

from .delivery import configure_export, exporting_to, flush
from .handle import SPAN_TYPES, SpanHandle
from .spans import SpanScope, annotate, current_span, span
from .traces import Trace, current_trace, end_trace, open_traces, start_trace

__all__ = [
    "SPAN_TYPES", "SpanHandle", "SpanScope", "Trace", "annotate", "configure_export",
    "current_span", "current_trace", "end_trace", "exporting_to", "flush", "open_traces",
    "span", "start_trace",
]
