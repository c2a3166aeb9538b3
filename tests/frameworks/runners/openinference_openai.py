"""A hand-written tool loop on the openai client, traced by openinference-instrumentation-
openai (LLM spans) and OpenInference's OITracer decorators (agent and tool spans)."""

from __future__ import annotations

import json

from harness import MODEL, SYSTEM_PROMPT, parse_args, tracer_provider
from openai import OpenAI
from openinference.instrumentation import OITracer, TraceConfig
from openinference.instrumentation.openai import OpenAIInstrumentor
from travel_tools import TOOLS, chat_tool_loop

args = parse_args()
provider = tracer_provider("openinference-openai-agent", args.otlp)
OpenAIInstrumentor().instrument(tracer_provider=provider)
tracer = OITracer(provider.get_tracer("travel-agent"), config=TraceConfig())
client = OpenAI(base_url=args.base_url, api_key="sk-local-mock")
traced_tools = {name: tracer.tool(name=name)(fn) for name, fn in TOOLS.items()}


def call_tool(name: str, arguments: str) -> str:
    tool = traced_tools.get(name)
    if tool is None:
        return f"Error: unknown tool {name!r}"
    try:
        return json.dumps(tool(**json.loads(arguments)))
    except Exception as exc:  # the model is told, as agents do
        return f"Error: {type(exc).__name__}: {exc}"


@tracer.agent(name="travel_agent")
def travel_agent(question: str) -> str:
    return chat_tool_loop(client, MODEL, SYSTEM_PROMPT, question,
                          lambda call: call_tool(call.function.name, call.function.arguments))


for question in args.questions:
    travel_agent(question)
provider.shutdown()
