"""Signatures: what makes two findings "the same failure" across traces.

A signature is ``detector|span_path|key``. Span paths are built from span labels:
``tool:<tool name>`` for tool spans, ``llm:<span name without the model name>`` for
LLM spans, the span name for everything else; all with volatile parts masked (uuids,
long hex ids, numbers, quoted literals) so "step 3" and "step 7" are one step.
"""

from __future__ import annotations

import re

# (pattern, replacement); applied in order, both here and in Polars (prepare.py).
MASKS: tuple[tuple[str, str], ...] = (
    (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "<uuid>"),
    (r"\b(?:0x)?[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b", "<id>"),
    (r"\b(?:0x)?[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*[0-9][0-9a-fA-F]*\b", "<id>"),
    (r"'[^']*'", "'…'"),
    (r"\"[^\"]*\"", "\"…\""),
    (r"\d+(?:[.,:]\d+)*", "#"),
    (r"\s+", " "),
)
_COMPILED = tuple((re.compile(p), r) for p, r in MASKS)
TOOL_LIKE = frozenset({"tool", "retriever", "embedding", "reranker"})
KEY_MAX = 80


def mask(text: str | None) -> str:
    """``text`` with volatile parts replaced by placeholders (ids, numbers, literals)."""
    if not text:
        return ""
    out = text
    for pattern, repl in _COMPILED:
        out = pattern.sub(repl, out)
    return out.strip()


def span_label(kind: str, name: str | None, tool_name: str | None, model: str | None) -> str:
    """The label of one span in a span path (see module docstring)."""
    name = name or ""
    if kind == "tool" and tool_name:
        return f"tool:{mask(tool_name)}"
    if kind == "llm":
        if model and model in name:
            name = name.replace(model, " ")
        return "llm:" + (mask(name).replace(" ", "_") or "call")
    label = mask(name) or kind
    return f"{kind}:{label}" if kind in TOOL_LIKE else label


def signature(detector: str, span_path: str, key: str = "") -> str:
    key = mask(key)[:KEY_MAX]
    return f"{detector}|{span_path}|{key}" if key else f"{detector}|{span_path}"
