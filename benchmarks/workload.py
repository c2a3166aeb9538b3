"""Realistic agent spans for the benchmarks, as OTLP protobuf request bodies.

Each trace is an agent run: an ``invoke_agent`` root, then rounds of an LLM call
(OpenInference + GenAI attributes, prompt and completion text, token counts) and a
tool call (name, JSON arguments, result). A span encodes to about 1 KB of protobuf.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

BATCH_SIZE = 512
SPANS_PER_TRACE = 16
TOOLS = ("search_flights", "get_weather", "lookup_order", "send_email", "query_db")
WORDS = ("the customer asked about their booking and wants a refund for the delayed flight "
         "please check the policy and confirm the amount before replying politely").split()


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _attr(span: Span, key: str, value: str | int | float | bool) -> None:
    kv: KeyValue = span.attributes.add()
    kv.key = key
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = value


def _fill(span: Span, rng: random.Random, index: int) -> None:
    if index == 0:
        span.name = "invoke_agent support_bot"
        _attr(span, "openinference.span.kind", "AGENT")
        _attr(span, "gen_ai.operation.name", "invoke_agent")
        _attr(span, "gen_ai.agent.name", "support_bot")
        _attr(span, "input.value", _text(rng, 50))
        _attr(span, "output.value", _text(rng, 50))
        _attr(span, "session.id", f"session-{rng.randrange(10**6)}")
        _attr(span, "user.id", f"user-{rng.randrange(10**4)}")
        return
    if index % 2 == 1:
        span.name = "chat gpt-4o-mini"
        span.kind = Span.SPAN_KIND_CLIENT
        _attr(span, "openinference.span.kind", "LLM")
        _attr(span, "gen_ai.operation.name", "chat")
        _attr(span, "gen_ai.request.model", "gpt-4o-mini")
        _attr(span, "llm.model_name", "gpt-4o-mini")
        prompt = rng.randrange(500, 8000)
        completion = rng.randrange(20, 600)
        _attr(span, "gen_ai.usage.input_tokens", prompt)
        _attr(span, "gen_ai.usage.output_tokens", completion)
        _attr(span, "llm.token_count.total", prompt + completion)
        _attr(span, "gen_ai.request.temperature", 0.2)
        _attr(span, "gen_ai.response.finish_reasons", "stop")
        _attr(span, "input.value", _text(rng, 75))
        _attr(span, "output.value", _text(rng, 40))
        return
    tool = rng.choice(TOOLS)
    span.name = f"execute_tool {tool}"
    _attr(span, "openinference.span.kind", "TOOL")
    _attr(span, "gen_ai.operation.name", "execute_tool")
    _attr(span, "gen_ai.tool.name", tool)
    _attr(span, "tool.name", tool)
    _attr(span, "gen_ai.tool.call.id", f"call_{rng.getrandbits(64):016x}")
    args = {"query": _text(rng, 6), "limit": rng.randrange(1, 20)}
    _attr(span, "gen_ai.tool.call.arguments", json.dumps(args))
    _attr(span, "gen_ai.tool.call.result", json.dumps({"items": [_text(rng, 8) for _ in range(6)]}))
    _attr(span, "input.value", json.dumps(args))
    if rng.random() < 0.05:
        span.status.code = Status.STATUS_CODE_ERROR
        span.status.message = "tool timed out after 30s"


def request_bodies(total_spans: int, seed: int = 7, batch_size: int = BATCH_SIZE,
                   spans_per_trace: int = SPANS_PER_TRACE) -> Iterator[bytes]:
    """Serialized ExportTraceServiceRequests of ``batch_size`` spans, unique ids throughout.
    With ``spans_per_trace`` above ``batch_size`` a trace spans several requests, as a
    long agent run's does when its exporter sends spans as they end."""
    rng = random.Random(seed)
    now = time.time_ns()
    produced = 0
    trace_id = b""
    root_id = b""
    position = spans_per_trace
    while produced < total_spans:
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        kv = resource_spans.resource.attributes.add()
        kv.key, kv.value.string_value = "service.name", "support-agent"
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = "openinference.instrumentation.benchmark"
        scope_spans.scope.version = "1.0.0"
        for _ in range(min(batch_size, total_spans - produced)):
            if position == spans_per_trace:
                trace_id = rng.getrandbits(128).to_bytes(16, "big")
                root_id = rng.getrandbits(64).to_bytes(8, "big")
                position = 0
            span = scope_spans.spans.add()
            span.trace_id = trace_id
            span.span_id = root_id if position == 0 else rng.getrandbits(64).to_bytes(8, "big")
            if position:
                span.parent_span_id = root_id
            span.start_time_unix_nano = now + produced * 1000
            span.end_time_unix_nano = span.start_time_unix_nano + rng.randrange(10**6, 10**9)
            _fill(span, rng, position)
            position += 1
            produced += 1
        yield request.SerializeToString()
