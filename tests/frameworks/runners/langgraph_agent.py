"""LangGraph's prebuilt ReAct agent on langchain-openai's ChatOpenAI, traced by
openinference-instrumentation-langchain."""

from __future__ import annotations

from harness import MODEL, SYSTEM_PROMPT, parse_args, tracer_provider
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.prebuilt import create_react_agent
from openinference.instrumentation.langchain import LangChainInstrumentor
from travel_tools import TOOLS

args = parse_args()
provider = tracer_provider("langgraph-agent", args.otlp)
LangChainInstrumentor().instrument(tracer_provider=provider)
model = ChatOpenAI(model=MODEL, base_url=args.base_url, api_key="sk-local-mock",
                   temperature=0)
agent = create_react_agent(model, [tool(fn) for fn in TOOLS.values()], prompt=SYSTEM_PROMPT)

for question in args.questions:
    try:
        agent.invoke({"messages": [("user", question)]}, {"recursion_limit": 30})
    except Exception as exc:  # a failed run is part of the recording
        print(f"run failed: {type(exc).__name__}: {exc}")
provider.shutdown()
