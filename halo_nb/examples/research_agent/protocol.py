"""How the agent talks to a model that has no native tool calling.

A 135M model does not emit OpenAI tool calls reliably, so the local model is asked for
one line, ``SEARCH: <query>`` or ``ANSWER: <text>``, and a GBNF grammar (sent as
``grammar`` in the request body, which llama.cpp servers accept) makes any other output
impossible. The agent maps ``SEARCH`` to a ``web_search`` tool call. Endpoints with native
tool calling (``protocol="tools"``) get the tool declaration and ``tool_choice`` instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Protocol = Literal["grammar", "tools"]
ToolChoice = Literal["required", "none"]

MAX_QUERY_CHARS = 60
MAX_ANSWER_CHARS = 100

SYSTEM_PROMPT = (
    "You are a research assistant. You have one tool, web_search, which searches the web.\n"
    "Reply with exactly one line, in one of two forms:\n"
    "SEARCH: <query>   to search the web\n"
    "ANSWER: <answer>  to answer the user's question\n"
    "Example: for 'Who wrote the novel Dracula?' reply SEARCH: Dracula novel author"
)
NATIVE_SYSTEM_PROMPT = (
    "You are a research assistant. Use the web_search tool to find information, "
    "then answer the user's question in one or two sentences."
)
REFORMULATE_INSTRUCTION = (
    "If a search returns no results, do not repeat it: search again with a different, "
    "broader query that uses fewer words."
)

_TEXT = {
    "query-text": f"[a-zA-Z0-9] [a-zA-Z0-9 ,'-]{{0,{MAX_QUERY_CHARS - 1}}}",
    "answer-text": f"[^\\n]{{1,{MAX_ANSWER_CHARS}}}",
}
_RULES = {"search": '"SEARCH: " query-text', "answer": '"ANSWER: " answer-text'}


def grammar(tool_choice: ToolChoice) -> str:
    """The GBNF grammar for one reply: SEARCH when a search is required, ANSWER when
    tools are off."""
    form = "search" if tool_choice == "required" else "answer"
    text = "query-text" if form == "search" else "answer-text"
    return f"root ::= {_RULES[form]}\n{text} ::= {_TEXT[text]}\n"


def system_prompt(protocol: Protocol, reformulate_on_empty: bool) -> str:
    base = SYSTEM_PROMPT if protocol == "grammar" else NATIVE_SYSTEM_PROMPT
    return f"{base}\n{REFORMULATE_INSTRUCTION}" if reformulate_on_empty else base


@dataclass(frozen=True)
class Reply:
    """One parsed model reply: a search to run, or the final answer."""

    action: Literal["search", "answer"]
    text: str


_LINE = re.compile(r"^\s*(SEARCH|ANSWER)\s*:\s*(.*)$", re.IGNORECASE)


def parse_reply(content: str | None) -> Reply:
    """Parse ``SEARCH: q`` / ``ANSWER: a``. Text in neither form is taken as the answer,
    so an unconstrained endpoint still ends the loop."""
    lines = (content or "").strip().splitlines()
    for number, line in enumerate(lines):
        match = _LINE.match(line)
        if match:
            if match.group(1).upper() == "SEARCH":
                return Reply("search", match.group(2).strip())
            return Reply("answer", "\n".join([match.group(2), *lines[number + 1:]]).strip())
    return Reply("answer", "\n".join(lines))
