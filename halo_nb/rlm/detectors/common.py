"""Per-trace helpers several detectors share (memoised on the TraceView)."""

from __future__ import annotations

import json
import re
from typing import Any

from ..graph import SpanNode, TraceView
from ..prepare import DECLARED_TOOL_KEYS
from ..text import args_similarity, is_empty_result, near_identical

# A tool object is a name, {"type": "function", "function": {"name", "parameters"}},
# {"name", "parameters" | "input_schema" | "inputSchema" | "json_schema"} or
# {"tool": {"json_schema": ...}} (attribute names: prepare.DECLARED_TOOL_KEYS).
_FLAT_PREFIX = "llm.tools."


def outcome(trace: TraceView, span: SpanNode) -> str | None:
    """'error', 'empty' or 'missing' for a tool call that gave the agent nothing, else None
    (tools empty by design, learned in prepare.py, give nothing by design)."""
    if span.failed:
        return "error"
    if span.empty_by_design:
        return None
    if span.tool_result is None:
        return "missing" if trace.capture_on and span.tool_args is not None else None
    return "empty" if is_empty_result(span.tool_result) else None


def previous_call(trace: TraceView, span: SpanNode) -> SpanNode | None:
    """The latest earlier call of the same tool in the same loop (loop_of: however the
    framework nests the loop's steps; calls in other branches are other work)."""
    calls, index = _calls(trace, span)
    return calls[index - 1] if index > 0 else None


def next_call(trace: TraceView, span: SpanNode) -> SpanNode | None:
    """The next call of the same tool in the same loop."""
    calls, index = _calls(trace, span)
    return calls[index + 1] if index + 1 < len(calls) else None


def _calls(trace: TraceView, span: SpanNode) -> tuple[list[SpanNode], int]:
    """The calls of ``span``'s tool in its loop (start order) and its position."""
    where = trace.memo.get("call_positions")
    if where is None:
        groups: dict[tuple[str | None, str | None], list[SpanNode]] = {}
        where = {}
        for t in trace.tools:
            calls = groups.setdefault((loop_of(trace, t), t.tool_name), [])
            where[t.span_id] = (calls, len(calls))
            calls.append(t)
        trace.memo["call_positions"] = where
    return where[span.span_id]


def retry_of(trace: TraceView, span: SpanNode) -> tuple[SpanNode, str, float | None] | None:
    """(previous call, its outcome, argument similarity) when ``span`` retries a call
    that failed or came back empty with near-identical arguments. With arguments not
    captured only a retry after an error is visible (similarity None)."""
    memo = trace.memo.setdefault("retry_of", {})
    if span.span_id in memo:
        return memo[span.span_id]
    found = None
    prev = previous_call(trace, span) if span.kind == "tool" and span.tool_name else None
    if prev is not None:
        result = outcome(trace, prev)
        if result is not None:
            sim = args_similarity(prev.tool_args, span.tool_args)
            if (sim is None and result == "error") or near_identical(prev.tool_args,
                                                                     span.tool_args):
                found = (prev, result, sim)
    memo[span.span_id] = found
    return found


def agent_of(trace: TraceView, span: SpanNode) -> str:
    """The span id of the agent whose conversation ``span`` is part of: the nearest
    agent-kind ancestor that is not one step of a loop (LangGraph runs its "agent" node
    once per step, as same-named siblings), else the top-level span above ``span``."""
    memo = trace.memo.setdefault("agent_of", {})
    found = memo.get(span.span_id)
    if found is None:
        last, node = span, trace.parent(span)
        while node is not None and not (node.kind == "agent" and not _repeated_step(trace, node)):
            last, node = node, trace.parent(node)
        found = memo[span.span_id] = (node or last).span_id
    return found


def loop_of(trace: TraceView, span: SpanNode) -> str | None:
    """The span id of the loop a tool call belongs to: its parent, looking through
    wrappers that frameworks open once per step (same-named siblings: openai-agents'
    "turn", LangGraph's "tools" and "agent" nodes), so one agent's steps are one loop;
    distinct units of work ("step 1", "step 2" of a plan) stay apart. None at the top."""
    memo = trace.memo.setdefault("loop_of", {})
    if span.span_id not in memo:
        node = trace.parent(span)
        while node is not None and _repeated_step(trace, node):
            node = trace.parent(node)
        memo[span.span_id] = node.span_id if node is not None else None
    return memo[span.span_id]


def _repeated_step(trace: TraceView, span: SpanNode) -> bool:
    parent = trace.parent(span)
    siblings = trace.children(parent) if parent is not None else trace.top
    return sum(1 for s in siblings if s.kind == span.kind and s.name == span.name) > 1


def loop_tools(trace: TraceView) -> dict[str | None, list[SpanNode]]:
    """Tool calls (start order) per loop_of."""
    found = trace.memo.get("loop_tools")
    if found is None:
        found = {}
        for tool in trace.tools:
            found.setdefault(loop_of(trace, tool), []).append(tool)
        trace.memo["loop_tools"] = found
    return found


_declarations: dict[str, dict[str, Any] | None] = {}


def declared_tools(span: SpanNode) -> dict[str, Any] | None:
    """Tool name -> JSON schema (or None) declared on an LLM span; None if it declares none.
    Parsed once per distinct declaration text (agents declare the same tools each call)."""
    text = span.declared_json
    if text is None:
        return None
    if text not in _declarations:
        if len(_declarations) > 10_000:
            _declarations.clear()
        _declarations[text] = _parse_declaration(text)
    return _declarations[text]


def _parse_declaration(text: str) -> dict[str, Any] | None:
    try:
        attrs = json.loads(text)
    except ValueError:
        return None
    items: list[Any] = []
    for key in DECLARED_TOOL_KEYS:
        value = attrs.get(key)
        if value is not None:
            items.extend(_as_list(value))
    flat = sorted(k for k in attrs if k.startswith(_FLAT_PREFIX) and k.endswith(".json_schema"))
    items.extend(attrs[k] for k in flat)
    tools: dict[str, Any] = {}
    for item in items:
        name, schema = _tool_entry(item)
        if name:
            tools[name] = schema
    return tools or None


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _tool_entry(item: Any) -> tuple[str | None, Any]:
    if isinstance(item, str):
        try:
            item = json.loads(item)
        except ValueError:
            return item.strip() or None, None
    if not isinstance(item, dict):
        return None, None
    if isinstance(item.get("tool"), dict):
        return _tool_entry(item["tool"].get("json_schema") or item["tool"])
    if isinstance(item.get("function"), dict):
        item = item["function"]
    name = item.get("name")
    schema = None
    for key in ("parameters", "input_schema", "inputSchema", "json_schema"):
        if isinstance(item.get(key), (dict, str)):
            schema = item[key]
            break
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError:
            schema = None
    return (str(name) if name else None), schema


_OPENINFERENCE_CALL = re.compile(
    r"^llm\.output_messages\.\d+\.message\.tool_calls\.\d+\.tool_call\.function\.name$")
_LEGACY_GENAI_CALL = re.compile(r"^gen_ai\.completion\.\d+\.tool_calls\.\d+\.name$")


def requested_tools(span: SpanNode) -> list[str]:
    """The tool names an LLM call asked for, from its output attributes: OpenInference
    ``llm.output_messages.*.message.tool_calls.*.tool_call.function.name``, OTel GenAI
    ``gen_ai.output.messages`` tool_call parts, older GenAI ``gen_ai.completion.*.
    tool_calls.*.name``. Empty when the output is not captured or asks for no tool."""
    if span.kind != "llm" or "tool_call" not in (span.output or ""):
        return []
    names: list[str] = []
    for key, value in sorted(span.attrs.items()):
        if isinstance(value, str) and (_OPENINFERENCE_CALL.match(key)
                                       or _LEGACY_GENAI_CALL.match(key)):
            names.append(value)
    messages = span.attrs.get("gen_ai.output.messages")
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except ValueError:
            messages = None
    for message in messages if isinstance(messages, list) else ():
        for part in (message.get("parts") or []) if isinstance(message, dict) else ():
            if isinstance(part, dict) and part.get("type") == "tool_call" and part.get("name"):
                names.append(str(part["name"]))
    return list(dict.fromkeys(names))
