"""Tools the LLM was never offered (hallucinated tools) and arguments that break the
declared JSON schema. The declaring LLM call is the latest LLM span before the tool
call that declares tools (attribute names: see common.DECLARED_TOOL_KEYS)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..graph import SpanNode, TraceView
from ..registry import Hit, detector
from .common import declared_tools


def _declaring_calls(trace: TraceView) -> list[tuple[SpanNode, dict[str, Any]]]:
    found = trace.memo.get("declaring_calls")
    if found is None:
        found = [(s, tools) for s in trace.llms if (tools := declared_tools(s)) is not None]
        trace.memo["declaring_calls"] = found
    return found


def _declaration_for(trace: TraceView, tool: SpanNode) -> tuple[SpanNode, dict[str, Any]] | None:
    best = None
    for llm, tools in _declaring_calls(trace):
        if llm.start_ns <= tool.start_ns:
            best = (llm, tools)
    return best


@detector("hallucinated_tool", severity="high", scope="trace")
def hallucinated_tool(trace: TraceView) -> Iterator[Hit]:
    """A tool span whose tool name is not among the tools the preceding LLM call declared:
    the model invented a tool (or the framework ran one it was never offered)."""
    if not _declaring_calls(trace):
        return
    for tool in trace.tools:
        found = _declaration_for(trace, tool)
        if found is None or not tool.tool_name or tool.tool_name in found[1]:
            continue
        llm, tools = found
        yield Hit(tool.span_id,
                  f"tool {tool.tool_name!r} was not declared to the LLM",
                  {"tool": tool.tool_name, "declared_tools": sorted(tools),
                   "llm_span_id": llm.span_id},
                  key=tool.tool_name)


@detector("tool_schema_violation", severity="medium", scope="trace")
def tool_schema_violation(trace: TraceView) -> Iterator[Hit]:
    """A declared tool called with arguments that break its declared JSON schema
    (missing required fields, wrong types, unknown fields where none are allowed, values
    outside an enum) or that are not JSON at all. Needs the arguments captured."""
    if not _declaring_calls(trace):
        return
    for tool in trace.tools:
        found = _declaration_for(trace, tool)
        if found is None or tool.tool_args is None:
            continue
        schema = found[1].get(tool.tool_name or "")
        if not isinstance(schema, dict):
            continue
        try:
            args = json.loads(tool.tool_args)
        except ValueError:
            problems = ["json:arguments"]
        else:
            problems = schema_violations(args, schema)
        if problems:
            yield Hit(tool.span_id,
                      f"{tool.tool_name} arguments break the declared schema ({problems[0]})",
                      {"tool": tool.tool_name, "violations": problems[:10],
                       "llm_span_id": found[0].span_id},
                      key=problems[0])


_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,),
                                       "number": (int, float), "boolean": (bool,),
                                       "object": (dict,), "array": (list,),
                                       "null": (type(None),)}


def _type_ok(value: Any, expected: Any) -> bool:
    names = expected if isinstance(expected, list) else [expected]
    for name in names:
        kinds = _TYPES.get(name)
        if kinds is None:
            return True  # a type this checker does not know: do not guess
        if isinstance(value, bool) and name in ("integer", "number"):
            continue
        if isinstance(value, kinds):
            return True
    return False


def schema_violations(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Violations of the JSON-schema subset tools use (type, required, properties,
    additionalProperties false, enum, items) as 'rule:field' strings."""
    where = path or "$"
    if "type" in schema and not _type_ok(value, schema["type"]):
        return [f"type:{where}"]
    out: list[str] = []
    if "enum" in schema and isinstance(schema["enum"], list) and value not in schema["enum"]:
        out.append(f"enum:{where}")
    if isinstance(value, dict):
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        out.extend(f"required:{path}{name}" for name in schema.get("required") or []
                   if name not in value)
        if schema.get("additionalProperties") is False:
            out.extend(f"additional:{path}{name}" for name in value if name not in props)
        for name, item in value.items():
            if isinstance(props.get(name), dict):
                out.extend(schema_violations(item, props[name], f"{path}{name}."))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            out.extend(schema_violations(item, schema["items"], f"{path}[]."))
    return [v.rstrip(".") for v in out]
