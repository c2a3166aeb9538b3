"""The travel agent's tools, shared by every Python runner (standard library only: the
runners execute in the frameworks' own virtual environment)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FORECASTS = {
    "Paris": "light rain, 14 C", "Tokyo": "sunny, 22 C", "Lima": "overcast, 19 C",
    "Oslo": "snow showers, -2 C", "Cairo": "clear, 31 C", "Quito": "showers, 16 C",
    "Hanoi": "humid, 29 C", "Dakar": "windy, 27 C", "Perth": "sunny, 25 C",
    "Turin": "fog, 9 C", "Rome": "sunny, 20 C", "Berlin": "cloudy, 11 C",
    "Madrid": "clear, 23 C", "Vienna": "drizzle, 12 C", "Prague": "cloudy, 10 C",
    "Lisbon": "sunny, 21 C",
}
GUIDE = tuple(f"{city} museum: open 9:00-18:00, free on Sundays" for city in FORECASTS)
NOTES = {"notes/packing.txt": "umbrella, charger, passport"}


def get_weather(city: str) -> str:
    """Tomorrow's forecast for a city."""
    return f"{city}: {FORECASTS.get(city, 'mild, 18 C')}"


def search_docs(query: str) -> list[str]:
    """Guide entries that contain every word of the query."""
    words = query.lower().split()
    return [doc for doc in GUIDE if all(word in doc.lower() for word in words)]


def think(thought: str) -> None:
    """A scratchpad: the model writes down a thought; nothing comes back, by design."""
    return None


def read_file(path: str) -> str:
    """A file from the user's travel notes."""
    if path not in NOTES:
        raise PermissionError(f"[Errno 13] Permission denied: '{path}'")
    return NOTES[path]


TOOLS = {"get_weather": get_weather, "search_docs": search_docs, "think": think,
         "read_file": read_file}
PARAMETER = {"get_weather": ("city", "The city name"),
             "search_docs": ("query", "Words to look for in the travel guide"),
             "think": ("thought", "What to think about"),
             "read_file": ("path", "Path of the notes file")}


def openai_tool_schemas() -> list[dict]:
    """The tools as OpenAI chat-completions function declarations."""
    return [{"type": "function",
             "function": {"name": name, "description": fn.__doc__,
                          "parameters": {"type": "object",
                                         "properties": {PARAMETER[name][0]: {
                                             "type": "string",
                                             "description": PARAMETER[name][1]}},
                                         "required": [PARAMETER[name][0]],
                                         "additionalProperties": False}}}
            for name, fn in TOOLS.items()]


def chat_tool_loop(client: Any, model: str, system_prompt: str, question: str,
                   run_call: Callable[[Any], str], max_steps: int = 10) -> str:
    """The agent loop of the runners that drive the OpenAI client themselves: call the
    model with the tools, run each requested tool call through ``run_call`` (the runner's
    traced tool wrapper), until the model answers without a tool call."""
    messages = [{"role": "system", "content": system_prompt},
                {"role": "user", "content": question}]
    for _ in range(max_steps):
        reply = client.chat.completions.create(model=model, messages=messages,
                                               tools=openai_tool_schemas())
        message = reply.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            return message.content or ""
        for call in message.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call.id,
                             "content": run_call(call)})
    return "I ran out of steps."
