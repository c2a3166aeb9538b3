"""A hand-written tool loop on the openai client, traced by traceloop-sdk: its OpenAI
instrumentation (LLM spans) and its @agent / @tool decorators."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TRACELOOP_TELEMETRY", "false")

from harness import MODEL, SYSTEM_PROMPT, parse_args  # noqa: E402
from openai import OpenAI  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from traceloop.sdk import Traceloop  # noqa: E402
from traceloop.sdk.decorators import agent, tool  # noqa: E402
from traceloop.sdk.instruments import Instruments  # noqa: E402
from travel_tools import TOOLS, chat_tool_loop  # noqa: E402

args = parse_args()
Traceloop.init(app_name="traceloop-agent", exporter=OTLPSpanExporter(endpoint=args.otlp),
               disable_batch=True, telemetry_enabled=False, instruments={Instruments.OPENAI})
client = OpenAI(base_url=args.base_url, api_key="sk-local-mock")
traced_tools = {name: tool(name=name)(fn) for name, fn in TOOLS.items()}


def call_tool(name: str, arguments: str) -> str:
    fn = traced_tools.get(name)
    if fn is None:
        return f"Error: unknown tool {name!r}"
    try:
        return json.dumps(fn(**json.loads(arguments)))
    except Exception as exc:
        return f"Error: {type(exc).__name__}: {exc}"


@agent(name="travel_agent")
def travel_agent(question: str) -> str:
    return chat_tool_loop(client, MODEL, SYSTEM_PROMPT, question,
                          lambda call: call_tool(call.function.name, call.function.arguments))


for question in args.questions:
    travel_agent(question)
trace.get_tracer_provider().force_flush()
