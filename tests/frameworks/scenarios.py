"""The scripted agent runs the framework corpus records: what the mock model answers at
each step of each scenario, and the faults each faulty scenario injects.

A scenario's script is a list of steps; step ``i`` is the answer to a request whose
conversation already holds ``i`` assistant turns, so the script does not depend on how a
framework phrases tool results. ``{city}`` is the city named in the run's question."""

from __future__ import annotations

from dataclasses import dataclass

CITIES = ("Paris", "Tokyo", "Lima", "Oslo", "Cairo", "Quito", "Hanoi", "Dakar", "Perth", "Turin")
QUESTION = "I am visiting {city} tomorrow. What should I see and what should I pack?"


@dataclass(frozen=True)
class ToolCall:
    """The model asks for one tool call."""
    name: str
    arguments: dict[str, str]


@dataclass(frozen=True)
class Answer:
    """The model answers in text and stops."""
    text: str


Step = ToolCall | Answer

_OTHER_CITIES = ("Rome", "Berlin", "Madrid", "Vienna", "Prague", "Lisbon")

SCRIPTS: dict[str, list[Step]] = {
    "healthy_1call": [
        Answer("{city} rewards a slow walk through its old centre; pack comfortable shoes."),
    ],
    "healthy_4call": [
        ToolCall("get_weather", {"city": "{city}"}),
        ToolCall("search_docs", {"query": "museum {city}"}),
        ToolCall("think", {"thought": "Weather and museums are known; combine them."}),
        Answer("Tomorrow in {city}: see the museum from the guide, and pack for the "
               "forecast above."),
    ],
    # One tool called six times with six different arguments: ordinary fan-out work.
    "healthy_fanout": [
        *(ToolCall("get_weather", {"city": c}) for c in _OTHER_CITIES),
        Answer("{city} is warmer than the six cities you compared; pack light."),
    ],
    "made_up_tool": [
        ToolCall("book_flight", {"destination": "{city}"}),
        Answer("I can't book flights here, but {city} is easy to reach by train."),
    ],
    "empty_retries": [
        ToolCall("search_docs", {"query": "flux museum {city}"}),
        ToolCall("search_docs", {"query": "flux museum {city}"}),
        ToolCall("search_docs", {"query": "flux museum {city}"}),
        Answer("The {city} flux museum opens at 9 am; pack a jacket."),
    ],
    "tool_raises": [
        ToolCall("read_file", {"path": "/etc/agent/{city}.secrets"}),
        Answer("I could not read your travel notes, but {city} is lovely; pack layers."),
    ],
    "loop": [
        *(ToolCall("get_weather", {"city": "{city}"}) for _ in range(6)),
        Answer("{city} will be mild; pack a light coat."),
    ],
}

HEALTHY = ("healthy_1call", "healthy_4call", "healthy_fanout")

# The detector that must catch each faulty scenario, where the library can express it.
EXPECTED: dict[str, tuple[str, ...]] = {
    "made_up_tool": ("hallucinated_tool",),
    "empty_retries": ("empty_tool_result", "retry_loop"),
    "tool_raises": ("error_status",),
    "loop": ("agent_loop",),
}


def step_for(scenario: str, assistant_turns: int) -> Step:
    """The scripted answer after ``assistant_turns`` assistant turns (the last step
    repeats if a framework asks again)."""
    script = SCRIPTS[scenario]
    return script[min(assistant_turns, len(script) - 1)]
