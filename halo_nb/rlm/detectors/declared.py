"""Tools the LLM was never offered (hallucinated tools) and arguments that break the
declared JSON schema. The declaration that applies is the latest LLM or agent span
before the call that declares tools (attribute names: see prepare.DECLARED_TOOL_KEYS;
GenAI agents declare them on the invoke_agent span)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from ..graph import SpanNode, TraceView
from ..registry import Hit, detector
from .common import agent_of, declared_tools, requested_tools


def _declaring_calls(trace: TraceView) -> list[tuple[SpanNode, dict[str, Any]]]:
    found = trace.memo.get("declaring_calls")
    if found is None:
        found = [(s, tools) for s in trace.spans
                 if s.kind in ("llm", "agent") and (tools := declared_tools(s)) is not None]
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
    """A tool the model was never offered: a tool span whose name is not among the
    declared tools, or a tool call the LLM requested (its output's tool calls) that is
    not declared. Frameworks run no span for an unknown tool (LangGraph, openai-agents,
    pydantic-ai), so the request is what shows it; where no declaration is recorded, the
    framework's own rejection ("Tool not found: book_flight") after the request does."""
    flagged: set[str] = set()
    for tool in trace.tools:
        found = _declaration_for(trace, tool)
        if found is None or not tool.tool_name or tool.tool_name in found[1]:
            continue
        llm, tools = found
        flagged.add(tool.tool_name)
        yield Hit(tool.span_id,
                  f"tool {tool.tool_name!r} was not declared to the LLM",
                  {"tool": tool.tool_name, "declared_tools": sorted(tools),
                   "llm_span_id": llm.span_id},
                  key=tool.tool_name)
    for llm in trace.llms:
        for name in requested_tools(llm):
            if name in flagged:
                continue
            found = _declaration_for(trace, llm)
            if found is not None:
                if name in found[1]:
                    continue
                evidence = {"declared_tools": sorted(found[1]), "declared_on": found[0].span_id}
            else:
                rejection = _rejection(trace, llm, name)
                if rejection is None:
                    continue
                evidence = {"rejected_by_span_id": rejection.span_id}
            flagged.add(name)
            yield Hit(llm.span_id, f"the LLM requested tool {name!r}, which was not declared",
                      {"tool": name, "llm_span_id": llm.span_id, **evidence}, key=name)


_REJECTION = ("unknown", "invalid", "not a valid", "not valid", "not found", "no such",
              "does not exist", "not available", "unavailable")


def _rejection(trace: TraceView, llm: SpanNode, name: str) -> SpanNode | None:
    """A span of the same agent, after ``llm`` started, whose status, output, result or
    exception says the requested tool ``name`` is unknown."""
    words = "|".join(re.escape(w) for w in _REJECTION)
    pattern = re.compile(rf"(?:{words})[^\n]{{0,40}}{re.escape(name)}|"
                         rf"{re.escape(name)}[^\n]{{0,40}}(?:{words})", re.IGNORECASE)
    agent = agent_of(trace, llm)
    for span in trace.spans:
        if span.end_ns is not None and span.end_ns < llm.start_ns:
            continue
        texts = (span.status_message, span.tool_result,
                 span.output if span is not llm else None)
        if any(t and pattern.search(t) for t in texts) and (
                span.kind == "agent" or agent_of(trace, span) == agent):
            return span
    return None


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
        args = _arguments(tool.tool_args, schema)
        problems = ["json:arguments"] if args is None else schema_violations(args, schema)
        if problems:
            yield Hit(tool.span_id,
                      f"{tool.tool_name} arguments break the declared schema ({problems[0]})",
                      {"tool": tool.tool_name, "violations": problems[:10],
                       "llm_span_id": found[0].span_id},
                      key=problems[0])


def _arguments(text: str, schema: dict[str, Any]) -> Any:
    """The arguments as JSON; a bare value for a tool with a single parameter (LangChain
    records a one-argument tool's input as the value alone: ``Paris``) stands for
    ``{parameter: value}``. None when they are not JSON and not such a value."""
    try:
        return json.loads(text)
    except ValueError:
        props = schema.get("properties")
        if isinstance(props, dict) and len(props) == 1:
            return {next(iter(props)): text}
        return None


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
