"""Labelled trace corpora for evaluating the engine.

``generate(n_traces, seed)`` builds agent runs of three shapes — a single ReAct loop,
plan-and-execute, and a multi-agent hand-off — writes each in one of three attribute
conventions (OpenInference, OTel GenAI, the halo SDK's ``halo.span.type``), with or
without content capture, and feeds them through ``SpanFrameBuilder`` (the collector's
normaliser). A share of the runs gets exactly one injected fault of one detector's kind
at a known span; the rest are clean, including hard negatives (an empty result the
agent handles by reformulating, or by saying it found nothing).

The truth: ``labels`` = {(trace_id, span_id, detector)} every finding the engine should
make, and ``truth`` = trace_id -> scenario ("<shape>:<fault>[:<variant>]" or "clean"),
the partition the clusters should recover.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from halo_nb.ingest.frame_builder import SpanFrameBuilder

SHAPES = ("react", "plan_execute", "handoff")
CONVENTIONS = ("openinference", "genai", "halo")
# Faults and whether they need content capture to be visible.
FAULTS: dict[str, bool] = {
    "empty_tool_result": True, "error_status": False, "retry_loop": True,
    "hallucinated_tool": True, "tool_schema_violation": True, "context_growth": False,
    "truncation": False, "repeated_output": True, "agent_loop": False,
    "latency_outlier": False, "token_outlier": False, "never_ended": False,
    "no_output": True, "failure_words": True, "trace_integrity": False,
}
INTEGRITY_VARIANTS = ("orphan", "cycle", "clock_skew")
CLEAN = "clean"

MS = 1_000_000
EPOCH_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
TRACE_SPACING_NS = 120 * 10**9
MODEL = "gpt-4o-mini"

TOPICS = ("python asyncio tutorial", "history of the printing press", "rust borrow checker",
          "photosynthesis in desert plants", "jupyter widgets", "volcanic soil farming",
          "polars lazy frames", "roman aqueducts", "sourdough hydration", "tidal energy",
          "bird migration routes", "graph databases", "ancient greek theatre",
          "quantum dots displays", "coral reef bleaching", "opentelemetry sampling")
WEB_SEARCH = {"type": "function", "function": {
    "name": "web_search", "description": "Search the web.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"},
                                                    "max_results": {"type": "integer"}},
                   "required": ["query"], "additionalProperties": False}}}
FETCH_PAGE = {"type": "function", "function": {
    "name": "fetch_page", "description": "Fetch a web page.",
    "parameters": {"type": "object", "properties": {"url": {"type": "string"}},
                   "required": ["url"], "additionalProperties": False}}}
CALCULATOR = {"type": "function", "function": {
    "name": "calculator", "description": "Evaluate arithmetic.",
    "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                   "required": ["expression"], "additionalProperties": False}}}
LOOKUP_ORDER = {"type": "function", "function": {
    "name": "lookup_order", "description": "Look up an order.",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                   "required": ["order_id"], "additionalProperties": False}}}


@dataclass(eq=False)
class Node:
    """A logical span before encoding; times are filled in by ``_layout``."""

    kind: str
    name: str
    dur_ms: float = 0.0
    tool: str | None = None
    args: Any = None
    result: str | None = None
    input: str | None = None
    output: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    finish: str | None = None
    declared: list[dict[str, Any]] | None = None
    error: tuple[str, str] | None = None
    children: list[Node] = field(default_factory=list)
    ended: bool = True
    start_ns: int = 0
    end_ns: int = 0
    span_id: str = ""
    parent_id: str | None = None

    def add(self, child: Node) -> Node:
        self.children.append(child)
        return child

    def walk(self) -> list[Node]:
        out = [self]
        for c in self.children:
            out.extend(c.walk())
        return out


@dataclass
class Corpus:
    spans: pl.DataFrame
    labels: set[tuple[str, str, str]]
    truth: dict[str, str]
    meta: dict[str, dict[str, Any]]

    @property
    def trace_ids(self) -> list[str]:
        return sorted(self.truth)


@dataclass
class Run:
    """One agent run being built: its tree and the handles faults act on."""

    rng: random.Random
    shape: str
    root: Node
    loop_parent: Node = None  # type: ignore[assignment]  # where the LLM -> tool loop runs
    loop_llms: list[Node] = field(default_factory=list)
    target: Node = None  # type: ignore[assignment]  # the tool call faults aim at
    labels: list[tuple[Node | str, str]] = field(default_factory=list)
    dropped: set[int] = field(default_factory=set)
    parent_override: dict[int, Node] = field(default_factory=dict)


# -- building blocks -------------------------------------------------------------------

def _llm(rng: random.Random, output: str, tokens_in: int, tools: list[dict] | None,
         prompt: str) -> Node:
    return Node("llm", f"chat {MODEL}", dur_ms=rng.uniform(300, 1500), input=prompt,
                output=output, tokens_in=tokens_in, tokens_out=rng.randint(40, 220),
                finish="stop", declared=tools)


def _tool(rng: random.Random, name: str, args: dict[str, Any], result: str) -> Node:
    return Node("tool", f"execute_tool {name}", dur_ms=rng.uniform(100, 600), tool=name,
                args=args, result=result)


def _results(rng: random.Random, topic: str) -> str:
    n = rng.randint(1, 3)
    return json.dumps([{"title": f"{topic} ({i + 1})", "url": f"https://example.org/{i}"}
                       for i in range(n)])


def _search_loop(run: Run, parent: Node, topic: str, rounds: int, tools: list[dict],
                 base_tokens: int, tool_name: str = "web_search",
                 make_args: Callable[[str], dict] | None = None) -> int:
    """LLM -> tool rounds under ``parent``; returns the input tokens reached."""
    rng = run.rng
    make_args = make_args or (lambda q: {"query": q})
    tokens = base_tokens
    follow_ups = rng.sample([t for t in TOPICS if t != topic], rounds)
    for i in range(rounds):
        query = topic if i == 0 else follow_ups[i]
        args = make_args(query)
        call = json.dumps({"tool": tool_name, **args}, sort_keys=True)
        run.loop_llms.append(parent.add(_llm(rng, f"CALL {call}", tokens, tools,
                                             f"Research: {topic} (round {i + 1})")))
        result = _results(rng, query) if tool_name == "web_search" else json.dumps(
            {"order": args.get("order_id"), "status": "shipped"})
        node = parent.add(_tool(rng, tool_name, args, result))
        if run.target is None:
            run.target = node
        tokens += rng.randint(100, 200)
    return tokens


def _react(run: Run, topic: str) -> None:
    rng = run.rng
    root = run.root
    run.loop_parent = root
    tools = [WEB_SEARCH, FETCH_PAGE]
    tokens = _search_loop(run, root, topic, rng.randint(1, 3), tools, rng.randint(500, 700))
    if rng.random() < 0.4:
        run.loop_llms.append(root.add(_llm(rng, "CALL fetch_page", tokens, tools,
                                           f"Read more on {topic}")))
        root.add(_tool(rng, "fetch_page", {"url": "https://example.org/0"},
                       f"<html>{topic} article text</html>"))
        tokens += rng.randint(100, 200)
    run.loop_llms.append(root.add(_llm(rng, f"Here is what I found about {topic}.", tokens,
                                       tools, f"Answer about {topic}")))


def _plan_execute(run: Run, topic: str) -> None:
    rng = run.rng
    root = run.root
    tools = [WEB_SEARCH, CALCULATOR]
    steps = rng.randint(2, 4)
    run.loop_llms.append(root.add(_llm(rng, f"PLAN {steps} steps for {topic}",
                                       rng.randint(500, 700), tools, f"Plan: {topic}")))
    target_step = rng.randrange(steps)
    for k in range(steps):
        step = root.add(Node("chain", f"step {k + 1}", dur_ms=rng.uniform(5, 30),
                             input=f"step {k + 1} of {topic}", output=f"step {k + 1} done"))
        query = f"{topic} part {k + 1}"
        run.loop_llms.append(step.add(_llm(rng, f"CALL web_search {query}",
                                           rng.randint(600, 900), tools, f"Step {k + 1}")))
        node = step.add(_tool(rng, "web_search", {"query": query}, _results(rng, query)))
        if k == target_step:
            run.target, run.loop_parent = node, step
        if rng.random() < 0.5:
            step.add(_tool(rng, "calculator", {"expression": f"{k + 2} * 7"}, str((k + 2) * 7)))
    run.loop_llms.append(root.add(_llm(rng, f"Summary of {topic} in {steps} steps.",
                                       rng.randint(900, 1300), tools, f"Summarise {topic}")))


def _handoff(run: Run, topic: str) -> None:
    rng = run.rng
    root = run.root
    order = f"A-{rng.randint(10000, 99999)}"
    root.add(_llm(rng, "HANDOFF support_agent", rng.randint(300, 500), None,
                  f"Customer asks about order {order} and {topic}"))
    handoff = root.add(Node("chain", "handoff", dur_ms=rng.uniform(2, 10),
                            input="support_agent", output="done"))
    agent = handoff.add(Node("agent", "support_agent", dur_ms=rng.uniform(5, 20),
                             input=f"order {order}", output=f"Order {order} has shipped."))
    run.loop_parent = agent
    tools = [LOOKUP_ORDER, WEB_SEARCH]
    tokens = _search_loop(run, agent, order, 1, tools, rng.randint(500, 700),
                          tool_name="lookup_order", make_args=lambda q: {"order_id": order})
    if rng.random() < 0.5:
        run.loop_llms.append(agent.add(_llm(rng, f"CALL web_search {topic}", tokens, tools,
                                            f"Also: {topic}")))
        agent.add(_tool(rng, "web_search", {"query": topic}, _results(rng, topic)))
        tokens += rng.randint(100, 200)
    run.loop_llms.append(agent.add(_llm(rng, f"Order {order} has shipped.", tokens, tools,
                                        f"Answer about {order}")))
    root.add(_llm(rng, f"Your order {order} is on its way.", rng.randint(400, 600), None,
                  "Reply to the customer"))


_SHAPES: dict[str, tuple[str, Callable[[Run, str], None]]] = {
    "react": ("research_agent", _react),
    "plan_execute": ("planner_agent", _plan_execute),
    "handoff": ("triage_agent", _handoff),
}


# -- faults ------------------------------------------------------------------------------

def _index(run: Run, node: Node) -> tuple[Node, int]:
    for parent in run.root.walk():
        if node in parent.children:
            return parent, parent.children.index(node)
    raise ValueError("node not in tree")


def _next_llm(run: Run, node: Node) -> Node | None:
    parent, i = _index(run, node)
    return next((c for c in parent.children[i + 1:] if c.kind == "llm"), None)


def _last_call(run: Run) -> Node:
    """The target tool's last call under its parent (nothing retries it afterwards)."""
    parent, _ = _index(run, run.target)
    return [c for c in parent.children if c.kind == "tool" and c.tool == run.target.tool][-1]


def _fault_empty_tool_result(run: Run, variant: str) -> None:
    target = _last_call(run)
    target.result = "[]"
    after = _next_llm(run, target)
    if after is not None:
        after.output = f"Based on the search results, the answer is clear. ({after.output})"
    run.labels.append((target, "empty_tool_result"))


def _fault_retry_loop(run: Run, variant: str) -> None:
    rng, target = run.rng, run.target
    parent, i = _index(run, target)
    existing = sum(1 for c in parent.children if c.kind == "tool" and c.tool == target.tool)
    retries = min(rng.randint(1, 3), 4 - existing)  # 5 calls would be an agent loop
    target.result = "[]"
    calls = [target]
    query_key = next(iter(target.args))
    for r in range(retries):
        value = target.args[query_key]
        value = value.upper() if r % 2 == 0 else f"{value} "
        args = {query_key: value}
        call = json.dumps({"tool": target.tool, **args}, sort_keys=True)
        llm = _llm(rng, f"CALL {call}", 600 + 80 * r, None, "retry")
        tool = _tool(rng, target.tool, args, "[]" if r < retries - 1 else
                     json.dumps([{"title": str(value).strip()}]))
        parent.children[i + 1 + 2 * r:i + 1 + 2 * r] = [llm, tool]
        calls.append(tool)
    for call in calls[:-1]:
        run.labels.append((call, "empty_tool_result"))
    for call in calls[1:]:
        run.labels.append((call, "retry_loop"))


def _fault_error_status(run: Run, variant: str) -> None:
    target = _last_call(run)  # a failed call followed by another call is a retry
    host = f"10.0.{run.rng.randint(0, 255)}.{run.rng.randint(1, 254)}"
    target.error = ("ConnectionError", f"connection to {host} refused "
                                       f"(request {run.rng.getrandbits(48):012x})")
    target.result = None
    after = _next_llm(run, target)
    if after is not None:
        after.output = f"The service could not be reached, so I answer from memory. {after.output}"
    run.labels.append((target, "error_status"))


def _fault_hallucinated_tool(run: Run, variant: str) -> None:
    fake = "browse_web" if run.target.tool == "web_search" else "get_order_status"
    run.target.tool, run.target.name = fake, f"execute_tool {fake}"
    run.labels.append((run.target, "hallucinated_tool"))


def _fault_tool_schema_violation(run: Run, variant: str) -> None:
    key = next(iter(run.target.args))
    run.target.args = {"q": run.target.args[key]}  # the required field is missing
    run.labels.append((run.target, "tool_schema_violation"))


def _fault_context_growth(run: Run, variant: str) -> None:
    tokens = run.rng.randint(600, 800)
    group = {id(n) for n in run.loop_llms}
    parent, i = _index(run, run.target)
    for extra in range(max(0, 4 - len(group))):  # growth needs a few calls: add some
        node = _llm(run.rng, f"CALL web_search more {extra}", 0, None, "more")
        parent.children.insert(i + 1, node)
        group.add(id(node))
    llms = [n for n in run.root.walk() if id(n) in group]
    for llm in llms:
        llm.tokens_in = tokens
        tokens = int(tokens * run.rng.uniform(1.6, 2.0))
    run.labels.append((llms[-1], "context_growth"))


def _fault_truncation(run: Run, variant: str) -> None:
    llm = run.loop_llms[-1]
    llm.finish, llm.tokens_out = "length", 256
    llm.output = (llm.output or "")[:30]
    run.labels.append((llm, "truncation"))


def _fault_repeated_output(run: Run, variant: str) -> None:
    parent, i = _index(run, run.target)
    before = parent.children[i - 1]
    again = _llm(run.rng, before.output, before.tokens_in + 50, before.declared, before.input)
    tool = _tool(run.rng, run.target.tool, dict(run.target.args), run.target.result)
    parent.children[i + 1:i + 1] = [again, tool]
    run.labels.append((again, "repeated_output"))


def _fault_agent_loop(run: Run, variant: str) -> None:
    rng, target = run.rng, run.target
    parent, i = _index(run, target)
    key = next(iter(target.args))
    calls = sum(1 for c in parent.children if c.kind == "tool" and c.tool == target.tool)
    added: list[Node] = []
    for r in range(rng.randint(6, 8) - calls):
        args = {key: f"{target.args[key]} angle {r + 2}"}
        call = json.dumps({"tool": target.tool, **args}, sort_keys=True)
        added += [_llm(rng, f"CALL {call}", rng.randint(600, 900), None, f"loop {r}"),
                  _tool(rng, target.tool, args, _results(rng, args[key]))]
    parent.children[i + 1:i + 1] = added
    for llm in parent.children:
        if llm.kind == "llm" and llm.tokens_in is not None:
            llm.tokens_in = rng.randint(600, 900)
    run.labels.append((parent, "agent_loop"))


def _fault_latency_outlier(run: Run, variant: str) -> None:
    run.target.dur_ms = run.rng.uniform(15, 30) * 400
    run.labels.append((run.target, "latency_outlier"))


def _fault_token_outlier(run: Run, variant: str) -> None:
    llm = run.loop_llms[0]
    llm.tokens_out = run.rng.randint(3000, 6000)
    run.labels.append((llm, "token_outlier"))


def _fault_never_ended(run: Run, variant: str) -> None:
    target = run.target
    chain = _ancestors(run, target)
    for node in (target, *chain):
        node.ended = False
    keep = {id(n) for n in (target, *chain)}
    _layout(run.root, 0)
    cut = target.start_ns
    for node in run.root.walk():
        if id(node) not in keep and node.start_ns > cut:
            run.dropped.add(id(node))
    run.labels.append((target, "never_ended"))


def _fault_no_output(run: Run, variant: str) -> None:
    run.root.output = None
    run.labels.append((run.root, "no_output"))


def _fault_failure_words(run: Run, variant: str) -> None:
    if run.shape == "handoff":
        run.root.output = "Stopped: max turns reached before an answer."
        run.labels.append((run.root, "failure_words"))
        return
    run.target.result = (json.dumps({"success": False, "error": "rate limit exceeded"})
                         if run.shape == "react" else
                         json.dumps({"status": "timeout", "results": []}))
    run.labels.append((run.target, "failure_words"))


def _fault_trace_integrity(run: Run, variant: str) -> None:
    if variant == "orphan":
        victim = run.root if run.shape == "react" else run.loop_parent
        run.dropped.add(id(victim))
        run.labels.append((victim.children[0], "trace_integrity"))
    elif variant == "cycle":
        run.parent_override[id(run.root)] = run.root.children[0]
        run.labels.append((run.root, "trace_integrity"))
    else:
        parent, _ = _index(run, run.target)  # the skew itself is applied when encoding
        run.labels.append((parent.children[-1], "trace_integrity:skew"))


def _ancestors(run: Run, node: Node) -> list[Node]:
    out = []
    while node is not run.root:
        node, _ = _index(run, node)
        out.append(node)
    return out


FAULT_BUILDERS: dict[str, Callable[[Run, str], None]] = {
    name: globals()[f"_fault_{name}"] for name in FAULTS}


# -- layout and encoding ---------------------------------------------------------------

def _layout(node: Node, start: int) -> int:
    """Children run one after another; a parent covers its children. Returns the end."""
    node.start_ns = start
    cursor = start + 2 * MS
    for child in node.children:
        cursor = _layout(child, cursor) + 3 * MS
    node.end_ns = max(start + int(node.dur_ms * MS), cursor)
    return node.end_ns


def _attributes(node: Node, convention: str, content: bool) -> dict[str, Any]:
    a: dict[str, Any] = {}
    kind = node.kind
    if convention == "openinference":
        a["openinference.span.kind"] = kind.upper()
        if kind == "llm":
            a["llm.model_name"] = MODEL
            a["llm.token_count.prompt"] = node.tokens_in
            a["llm.token_count.completion"] = node.tokens_out
            a["llm.finish_reason"] = node.finish
            if content and node.declared:
                for i, tool in enumerate(node.declared):
                    a[f"llm.tools.{i}.tool.json_schema"] = json.dumps(tool)
        if kind == "tool":
            a["tool.name"] = node.tool
        if content:
            a["input.value"] = json.dumps(node.args) if kind == "tool" else node.input
            a["output.value"] = node.result if kind == "tool" else node.output
    elif convention == "genai":
        op = {"llm": "chat", "tool": "execute_tool", "agent": "invoke_agent"}.get(kind)
        if op:
            a["gen_ai.operation.name"] = op
        if kind == "agent":
            a["gen_ai.agent.name"] = node.name
        if kind == "llm":
            a["gen_ai.request.model"] = MODEL
            a["gen_ai.usage.input_tokens"] = node.tokens_in
            a["gen_ai.usage.output_tokens"] = node.tokens_out
            a["gen_ai.response.finish_reasons"] = [node.finish] if node.finish else None
            if content and node.declared:
                a["gen_ai.tool.definitions"] = json.dumps(
                    [{"type": "function", **t["function"]} for t in node.declared])
        if kind == "tool":
            a["gen_ai.tool.name"] = node.tool
            if content:
                a["gen_ai.tool.call.arguments"] = json.dumps(node.args)
                a["gen_ai.tool.call.result"] = node.result
        elif content:
            if node.input is not None:
                a["gen_ai.input.messages"] = json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": node.input}]}])
            if node.output is not None:
                a["gen_ai.output.messages"] = json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": node.output}]}])
    else:  # the halo SDK's own spelling
        a["halo.span.type"] = kind
        if kind == "llm":
            a["gen_ai.request.model"] = MODEL
            a["gen_ai.usage.prompt_tokens"] = node.tokens_in
            a["gen_ai.usage.completion_tokens"] = node.tokens_out
            a["halo.finish_reason"] = node.finish
            if content and node.declared:
                a["halo.tools"] = json.dumps([t["function"] for t in node.declared])
        if kind == "tool":
            a["gen_ai.tool.name"] = node.tool
            if content:
                a["gen_ai.tool.call.arguments"] = json.dumps(node.args)
                a["gen_ai.tool.call.result"] = node.result
        elif content:
            a["input.value"] = node.input
            a["output.value"] = node.output
    return {k: v for k, v in a.items() if v is not None}


def add_trace(builder: SpanFrameBuilder, root: Node, *, trace_id: str,
              convention: str = "openinference", content: bool = True,
              start_ns: int = EPOCH_NS, rng: random.Random | None = None,
              dropped: set[int] | frozenset[int] = frozenset(),
              parent_override: dict[int, Node] | None = None, skew: Node | None = None,
              laid_out: bool = False) -> None:
    """Lay out a Node tree (children one after another) and add its spans to ``builder``
    in one attribute convention. ``dropped`` (node ids) are not sent; ``parent_override``
    re-points parents; ``skew`` ends 40 ms after its parent. Span ids are set on the nodes."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention: expected one of {CONVENTIONS}, got {convention!r}")
    rng = rng or random.Random(trace_id)
    if not laid_out:
        _layout(root, 0)
    nodes = root.walk()
    for node in nodes:
        node.span_id = f"{rng.getrandbits(64):016x}"
    parents = {id(c): p for p in nodes for c in p.children}
    override = parent_override or {}
    for node in nodes:
        if id(node) in dropped:
            continue
        parent = override.get(id(node), parents.get(id(node)))
        start, end = node.start_ns + start_ns, node.end_ns + start_ns
        if node is skew:
            end += 40 * MS
        events = []
        if node.error is not None:
            events.append({"name": "exception", "time_ns": end, "attributes": {
                "exception.type": node.error[0], "exception.message": node.error[1]}})
        builder.add(
            trace_id=trace_id, span_id=node.span_id,
            parent_span_id=parent.span_id if parent is not None else None,
            name=node.name, start_ns=start, end_ns=end if node.ended else None,
            status_code=2 if node.error else (1 if node.kind in ("llm", "tool") else 0),
            status_message=f"{node.error[0]}: {node.error[1]}" if node.error else None,
            attributes=_attributes(node, convention, content), events=events,
            resource={"service.name": f"{root.name}-service"})


def generate(n_traces: int = 300, seed: int = 0, fault_share: float = 0.7,
             no_content_share: float = 0.15, pad_to: int | None = None) -> Corpus:
    """A labelled corpus (see the module docstring). Deterministic for a seed.

    ``pad_to`` adds preparatory work at the start of each run (a few calculator rounds,
    then moderation and embedding calls) until it has about that many spans: the
    benchmark's ~20-span traces. Padding triggers no detector."""
    rng = random.Random(seed)
    builder = SpanFrameBuilder()
    labels: set[tuple[str, str, str]] = set()
    truth: dict[str, str] = {}
    meta: dict[str, dict[str, Any]] = {}
    faults = list(FAULTS)
    for n in range(n_traces):
        shape = SHAPES[n % len(SHAPES)]
        convention = CONVENTIONS[(n // len(SHAPES)) % len(CONVENTIONS)]
        fault = faults[(n // 9) % len(faults)] if rng.random() < fault_share else None
        content = rng.random() >= no_content_share
        if fault is not None and FAULTS[fault] and not content:
            content = True
        variant = rng.choice(INTEGRITY_VARIANTS) if fault == "trace_integrity" else ""
        trace_id = f"{rng.getrandbits(128):032x}"
        root_name, build = _SHAPES[shape]
        topic = rng.choice(TOPICS)
        root = Node("agent", root_name, dur_ms=rng.uniform(5, 40), input=f"Tell me about {topic}",
                    output=f"Answer: {topic} explained.")
        run = Run(rng, shape, root)
        build(run, topic)
        negative = None
        if pad_to:
            _pad(run, pad_to)
        if fault is not None:
            FAULT_BUILDERS[fault](run, variant)
        elif content and rng.random() < 0.3:
            negative = _hard_negative(run, topic)
        skew = next((node for node, det in run.labels if det == "trace_integrity:skew"), None)
        add_trace(builder, root, trace_id=trace_id, convention=convention, content=content,
                  start_ns=EPOCH_NS + n * TRACE_SPACING_NS, rng=rng, dropped=run.dropped,
                  parent_override=run.parent_override, skew=skew,
                  laid_out=fault == "never_ended")
        for node, det in run.labels:
            labels.add((trace_id, node.span_id, det.split(":")[0]))
        scenario = CLEAN if fault is None or variant == "clock_skew" else f"{shape}:{fault}"
        truth[trace_id] = f"{scenario}:{variant}" if variant and scenario != CLEAN else scenario
        meta[trace_id] = {"shape": shape, "convention": convention, "content": content,
                          "fault": fault, "variant": variant or None, "negative": negative}
    return Corpus(builder.build(), labels, truth, meta)


def _pad(run: Run, size: int) -> None:
    rng, padding = run.rng, []
    missing = size - len(run.root.walk())
    for k in range(min(3, missing // 2)):
        expression = f"{rng.randint(2, 99)} * {k + 3}"
        padding += [_llm(rng, f"CALL calculator {expression}", rng.randint(600, 900), None,
                         f"prepare {k}"),
                    _tool(rng, "calculator", {"expression": expression}, "42")]
    kinds = (("guardrail", "moderation"), ("embedding", "embed query"))
    while len(padding) < missing:
        kind, name = kinds[len(padding) % 2]
        padding.append(Node(kind, name, dur_ms=rng.uniform(20, 80)))
    run.root.children[0:0] = padding


def _hard_negative(run: Run, topic: str) -> str:
    """An empty result the agent handles: it reformulates, or says it found nothing."""
    target = run.target
    if target.tool != "web_search":
        return ""
    parent, i = _index(run, target)
    reformulate = run.rng.random() < 0.5
    later = [n for n in parent.children[i + 1:] if n.kind == "tool" and n.tool == "web_search"]
    if later and not reformulate:
        return ""
    target.result = "[]"
    if reformulate:
        query = f"{run.rng.choice(TOPICS)} explained simply"
        call = json.dumps({"tool": "web_search", "query": query}, sort_keys=True)
        parent.children[i + 1:i + 1] = [
            _llm(run.rng, f"CALL {call}", _min_tokens(run), None, "reformulate"),
            _tool(run.rng, "web_search", {"query": query}, _results(run.rng, query))]
        return "reformulated"
    after = _next_llm(run, target)
    if after is not None:
        after.output = f"I could not find any sources on {topic}."
    run.root.output = f"I could not find any sources on {topic}."
    return "acknowledged"


def _min_tokens(run: Run) -> int:
    return min(n.tokens_in for n in run.loop_llms if n.tokens_in is not None)
