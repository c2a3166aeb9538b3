"""Per-trace helpers several detectors share (memoised on the TraceView)."""

from __future__ import annotations

import json
from typing import Any

from ..graph import SpanNode, TraceView
from ..prepare import DECLARED_TOOL_KEYS
from ..text import args_similarity, is_empty_result, near_identical

# A tool object is a name, {"type": "function", "function": {"name", "parameters"}},
# {"name", "parameters" | "input_schema" | "inputSchema" | "json_schema"} or
# {"tool": {"json_schema": ...}} (attribute names: prepare.DECLARED_TOOL_KEYS).
_FLAT_PREFIX = "llm.tools."


def outcome(trace: TraceView, span: SpanNode) -> str | None:
    """'error', 'empty' or 'missing' for a tool call that gave the agent nothing, else None."""
    if span.failed:
        return "error"
    if span.tool_result is None:
        return "missing" if trace.capture_on and span.tool_args is not None else None
    return "empty" if is_empty_result(span.tool_result) else None


def previous_call(trace: TraceView, span: SpanNode) -> SpanNode | None:
    """The latest earlier call of the same tool under the same parent span (one agent
    loop; calls in other branches of the trace are other work, not retries)."""
    calls, index = _calls(trace, span)
    return calls[index - 1] if index > 0 else None


def next_call(trace: TraceView, span: SpanNode) -> SpanNode | None:
    """The next call of the same tool under the same parent span."""
    calls, index = _calls(trace, span)
    return calls[index + 1] if index + 1 < len(calls) else None


def _calls(trace: TraceView, span: SpanNode) -> tuple[list[SpanNode], int]:
    """The calls of ``span``'s tool under its parent (start order) and its position."""
    where = trace.memo.get("call_positions")
    if where is None:
        groups: dict[tuple[str | None, str | None], list[SpanNode]] = {}
        where = {}
        for t in trace.tools:
            parent = trace.parent(t)
            calls = groups.setdefault((parent.span_id if parent else None, t.tool_name), [])
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
    """The span id of the nearest agent-kind ancestor (else the top-level span above
    ``span``): the conversation an LLM call belongs to."""
    last, node = span, trace.parent(span)
    while node is not None:
        if node.kind == "agent":
            return node.span_id
        last, node = node, trace.parent(node)
    return last.span_id


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
