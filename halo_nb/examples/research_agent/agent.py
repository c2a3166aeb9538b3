"""The research agent: the classic tool-calling loop over an OpenAI-compatible endpoint.

system prompt + user question → LLM → ``web_search`` → LLM … (at most ``max_tool_rounds``
searches) → final answer. The agent grounds its answers: until a search has found
something it requires a tool call (``tool_choice="required"``); once one has, or after the
last round, it asks for the answer (``tool_choice="none"``). With ``reformulate_on_empty``
(the fix for the retry loop) the prompt tells the model to reformulate a query that found
nothing, and the tool wrapper does it: after an empty result it searches again at once
with a broader query.

Tracing is the recorder's job (``tracing.py``): the halo_nb SDK, or plain OpenTelemetry
with the OpenInference OpenAI instrumentor recording the LLM calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .protocol import Protocol, Reply, ToolChoice, grammar, parse_reply, system_prompt
from .search import WEB_SEARCH_TOOL, SimulatedSearch, broaden
from .tracing import Recorder


@dataclass(frozen=True)
class AgentConfig:
    model: str
    protocol: Protocol = "grammar"
    reformulate_on_empty: bool = False
    max_tool_rounds: int = 3
    max_tokens: int = 64
    temperature: float = 0.0
    seed: int = 42


@dataclass(frozen=True)
class Search:
    query: str
    result_count: int
    # True when the tool wrapper issued this search (reformulating an empty one).
    reformulated: bool = False


@dataclass
class AgentRun:
    """What one run did (the trace holds the details)."""

    question: str
    answer: str | None = None
    searches: list[Search] = field(default_factory=list)
    llm_calls: int = 0
    trace_id: str | None = None
    error: str | None = None

    @property
    def found_results(self) -> bool:
        return any(s.result_count for s in self.searches)


@dataclass(frozen=True)
class Completion:
    reply: Reply
    message: dict[str, Any]
    call_id: str | None


class ResearchAgent:
    def __init__(self, client: Any, config: AgentConfig, search: SimulatedSearch,
                 recorder: Recorder) -> None:
        self.client = client
        self.config = config
        self.search = search
        self.recorder = recorder

    def run(self, question: str) -> AgentRun:
        run = AgentRun(question)
        cfg = self.config
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": system_prompt(cfg.protocol, cfg.reformulate_on_empty)},
            {"role": "user", "content": question},
        ]
        metadata = {"reformulate_on_empty": cfg.reformulate_on_empty, "protocol": cfg.protocol,
                    "max_tool_rounds": cfg.max_tool_rounds, "search_seed": self.search.seed}
        with self.recorder.agent(question, metadata) as agent_span:
            run.trace_id = agent_span.trace_id
            try:
                self._loop(run, messages)
            except Exception as exc:
                run.error = f"{type(exc).__name__}: {exc}"
                agent_span.fail(exc)
                return run
            agent_span.finish(run.answer)
        return run

    def _loop(self, run: AgentRun, messages: list[dict[str, Any]]) -> None:
        cfg = self.config
        pending: Completion | None = None
        for round_number in range(cfg.max_tool_rounds + 1):
            if pending is None:
                done = run.found_results or len(run.searches) >= cfg.max_tool_rounds
                tool_choice: ToolChoice = "none" if done else "required"
                completion = self._complete(messages, tool_choice, round_number)
                run.llm_calls += 1
                if completion.reply.action == "answer":
                    run.answer = completion.reply.text
                    return
            else:
                completion = pending
            self._search(run, messages, completion, reformulated=pending is not None)
            pending = self._reformulation(run, round_number) if cfg.reformulate_on_empty else None

    def _reformulation(self, run: AgentRun, round_number: int) -> Completion | None:
        """The fix for the retry loop, in the tool wrapper: after an empty result, search
        again at once with a broader query unlike every one tried (the small model, asked
        again, would repeat its query whatever the prompt says)."""
        if run.found_results or len(run.searches) >= self.config.max_tool_rounds:
            return None
        tried = [s.query for s in run.searches]
        query = broaden(tried[-1], tried, run.question)
        return Completion(Reply("search", query), {"role": "assistant", "content": ""},
                          f"call_{round_number + 2}")

    def _complete(self, messages: list[dict[str, Any]], tool_choice: ToolChoice,
                  round_number: int) -> Completion:
        cfg = self.config
        request: dict[str, Any] = {
            "model": cfg.model, "messages": messages, "temperature": cfg.temperature,
            "seed": cfg.seed, "max_tokens": cfg.max_tokens,
        }
        if cfg.protocol == "grammar":
            # The tool is declared natively too (so instrumentors record it); the grammar,
            # not tool_choice, decides what the model may reply.
            request["tools"] = [WEB_SEARCH_TOOL]
            request["extra_body"] = {"grammar": grammar(tool_choice)}
        elif tool_choice == "required":
            # Naming the one tool forces a call of it (servers such as llama.cpp's then
            # constrain the arguments to the tool's JSON schema).
            request.update(tools=[WEB_SEARCH_TOOL],
                           tool_choice={"type": "function", "function": {"name": "web_search"}})
        with self.recorder.llm(request, tool_choice) as llm_span:
            response = self.client.chat.completions.create(**request)
            llm_span.record(response)
        choice = response.choices[0]
        message = choice.message
        if message.tool_calls:
            call = message.tool_calls[0]
            # strict=False: small models put raw newlines and tabs inside JSON strings.
            arguments = json.loads(call.function.arguments or "{}", strict=False)
            reply = Reply("search", str(arguments.get("query", "")))
            # Content "" rather than absent: chat templates of local servers read it.
            return Completion(reply, {"role": "assistant", "content": message.content or ""},
                              call.id)
        reply = parse_reply(message.content)
        return Completion(reply, {"role": "assistant", "content": message.content or ""},
                          f"call_{round_number + 1}")

    def _search(self, run: AgentRun, messages: list[dict[str, Any]], completion: Completion,
                reformulated: bool) -> None:
        query = completion.reply.text
        arguments = {"query": query}
        if self.config.protocol == "tools":
            message = dict(completion.message)
            message["tool_calls"] = [{
                "id": completion.call_id, "type": "function",
                "function": {"name": "web_search", "arguments": json.dumps(arguments)}}]
            messages.append(message)
        else:
            messages.append({"role": "assistant", "content": f"SEARCH: {query}"})
        with self.recorder.tool("web_search", arguments, completion.call_id) as tool_span:
            results = [r.as_dict() for r in self.search.search(query)]
            content = json.dumps({"results": results}, ensure_ascii=False)
            tool_span.record(content, result_count=len(results), reformulated=reformulated)
        run.searches.append(Search(query, len(results), reformulated))
        messages.append({"role": "tool", "tool_call_id": completion.call_id, "content": content})
