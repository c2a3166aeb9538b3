"""A hand-written tool loop on the openai client, traced by opentelemetry-instrumentation-
openai-v2 (GenAI chat spans, latest experimental conventions, content on spans) and
opentelemetry-util-genai's TelemetryHandler (invoke_agent and execute_tool spans)."""

from __future__ import annotations

import json
import os

os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")

from harness import MODEL, SYSTEM_PROMPT, parse_args, tracer_provider  # noqa: E402
from openai import OpenAI  # noqa: E402
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor  # noqa: E402
from opentelemetry.util.genai.handler import TelemetryHandler  # noqa: E402
from opentelemetry.util.genai.types import (  # noqa: E402
    FunctionToolDefinition,
    InputMessage,
    OutputMessage,
    Text,
)
from travel_tools import TOOLS, chat_tool_loop, openai_tool_schemas  # noqa: E402

args = parse_args()
provider = tracer_provider("openai-v2-agent", args.otlp)
OpenAIInstrumentor().instrument(tracer_provider=provider)
handler = TelemetryHandler(tracer_provider=provider)
client = OpenAI(base_url=args.base_url, api_key="sk-local-mock")
DEFINITIONS = [FunctionToolDefinition(name=t["function"]["name"],
                                      description=t["function"]["description"],
                                      parameters=t["function"]["parameters"])
               for t in openai_tool_schemas()]


def call_tool(name: str, call_id: str, arguments: str) -> str:
    fn = TOOLS.get(name)
    if fn is None:
        return f"Error: unknown tool {name!r}"
    try:
        with handler.tool(name, tool_call_id=call_id, tool_type="function") as invocation:
            invocation.arguments = arguments
            result = json.dumps(fn(**json.loads(arguments)))
            invocation.tool_result = result
            return result
    except Exception as exc:
        return f"Error: {type(exc).__name__}: {exc}"


def travel_agent(question: str) -> str:
    with handler.invoke_local_agent(request_model=MODEL, agent_name="travel_agent") as agent:
        agent.tool_definitions = DEFINITIONS
        agent.input_messages = [InputMessage(role="user", parts=[Text(content=question)])]
        answer = chat_tool_loop(
            client, MODEL, SYSTEM_PROMPT, question,
            lambda call: call_tool(call.function.name, call.id, call.function.arguments))
        agent.output_messages = [OutputMessage(role="assistant", parts=[Text(content=answer)],
                                               finish_reason="stop")]
        return answer


for question in args.questions:
    travel_agent(question)
provider.shutdown()
