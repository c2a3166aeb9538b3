"""A pydantic-ai agent on its OpenAI chat model, traced by pydantic-ai's built-in
OpenTelemetry instrumentation (GenAI conventions) on the global tracer provider."""

from __future__ import annotations

from harness import MODEL, SYSTEM_PROMPT, parse_args, tracer_provider
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from travel_tools import TOOLS

args = parse_args()
provider = tracer_provider("pydantic-ai-agent", args.otlp)
Agent.instrument_all()
model = OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=args.base_url,
                                                       api_key="sk-local-mock"))
agent = Agent(model, name="travel_agent", instructions=SYSTEM_PROMPT,
              tools=list(TOOLS.values()))

for question in args.questions:
    try:
        agent.run_sync(question)
    except Exception as exc:  # a failed run is part of the recording
        print(f"run failed: {type(exc).__name__}: {exc}")
provider.shutdown()
