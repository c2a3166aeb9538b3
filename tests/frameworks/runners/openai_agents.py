"""The OpenAI Agents SDK (chat-completions model) traced by openinference-instrumentation-
openai-agents; the SDK's own exporter to OpenAI is replaced by OpenInference's processor."""

from __future__ import annotations

from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_trace_processors,
)
from harness import MODEL, SYSTEM_PROMPT, parse_args, tracer_provider
from openai import AsyncOpenAI
from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor
from travel_tools import TOOLS

args = parse_args()
provider = tracer_provider("openai-agents-agent", args.otlp)
set_trace_processors([])  # no upload to OpenAI; OpenInference adds its own processor
OpenAIAgentsInstrumentor().instrument(tracer_provider=provider)
client = AsyncOpenAI(base_url=args.base_url, api_key="sk-local-mock")
agent = Agent(name="travel_agent", instructions=SYSTEM_PROMPT,
              model=OpenAIChatCompletionsModel(model=MODEL, openai_client=client),
              tools=[function_tool(fn) for fn in TOOLS.values()])

for question in args.questions:
    try:
        Runner.run_sync(agent, question, max_turns=12)
    except Exception as exc:  # a failed run is part of the recording
        print(f"run failed: {type(exc).__name__}: {exc}")
provider.shutdown()
