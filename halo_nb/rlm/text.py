"""Small text judgements the detectors share: empty results, argument similarity,
failure vocabulary, acknowledgement of missing data."""

from __future__ import annotations

import json
import re
from difflib import SequenceMatcher
from typing import Any

# Near-identical arguments: normalised-text similarity at or above this.
SIMILAR_ARGS = 0.85

_EMPTY_TEXT = frozenset({"", "[]", "{}", "null", "none", "nil", "\"\"", "no results",
                         "no results found", "0 results", "n/a"})

_LIMIT_NOUNS = ("limits?|quotas?|budgets?|maximum|max|deadlines?|context|tokens?|length|"
                "thresholds?|capacity|retries|attempts|turns|iterations|steps|size")
FAILURE_TERMS: tuple[tuple[str, str], ...] = (
    ("success_false", r"\"?(?:success|ok)\"?\s*[:=]\s*\"?false\b"),
    ("timeout", r"\btime[ds]?[ -]?out\b|\btimeout\b"),
    ("rate_limit", r"\brate[ _-]?limit(?:ed|s)?\b|\btoo many requests\b"),
    ("quota", r"\bquota\b"),
    ("max_turns", r"\bmax(?:imum)?[ _-]?(?:turns|iterations|steps|rounds)\b"),
    # "exceeded" only next to what a limit is ("rate limit exceeded", "exceeds the
    # maximum context"), not in prose ("slightly exceeds five minutes").
    ("exceeded", rf"\b(?:{_LIMIT_NOUNS})\b[^.\n]{{0,30}}\bexceed(?:ed|s)\b"
                 rf"|\bexceed(?:ed|s)\b[^.\n]{{0,30}}\b(?:{_LIMIT_NOUNS})\b"),
    ("failed_to", r"\bfailed to\b"),
)
FAILURE_PATTERN = "(?i)" + "|".join(f"(?:{p})" for _, p in FAILURE_TERMS)
_FAILURE_COMPILED = tuple((name, re.compile(p, re.IGNORECASE)) for name, p in FAILURE_TERMS)

_ABSENCE = re.compile(
    r"\b(?:no (?:relevant )?(?:results?|information|data|matches)|nothing (?:was )?found|"
    r"(?:could ?n[o']t|can ?n[o']t|cannot|unable to|did ?n[o']t|was ?n[o']t able to) "
    r"(?:find|locate|retrieve|get)|not (?:be )?found|empty (?:result|response))",
    re.IGNORECASE,
)


# A JSON result longer than this is not parsed to look for emptiness: a document whose
# values are all empty is short.
EMPTY_JSON_MAX_CHARS = 512


def is_empty_result(value: str | None) -> bool:
    """True for an empty tool result: blank, [], {}, null, 'no results', or a JSON
    object whose values are all empty (``{"results": []}``)."""
    if value is None:
        return False
    text = value.strip()
    if text.lower() in _EMPTY_TEXT:
        return True
    if text[:1] in "{[" and len(text) <= EMPTY_JSON_MAX_CHARS:
        try:
            data = json.loads(text)
        except ValueError:
            return False
        return _is_empty_value(data)
    return False


def _is_empty_value(data: Any) -> bool:
    if data is None or data == "" or data == [] or data == {}:
        return True
    if isinstance(data, dict):
        return all(_is_empty_value(v) for v in data.values())
    if isinstance(data, list):
        return all(_is_empty_value(v) for v in data)
    return False


def normalise_args(value: str | None) -> str:
    """Arguments as comparable text: JSON re-dumped with sorted keys, lower case,
    whitespace collapsed."""
    if value is None:
        return ""
    text = value.strip()
    if text[:1] in "{[":
        try:
            text = json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False)
        except ValueError:
            pass
    return " ".join(text.lower().split())


def args_similarity(a: str | None, b: str | None) -> float | None:
    """Similarity of two argument strings in 0..1, None when either is not captured."""
    if a is None or b is None:
        return None
    na, nb = normalise_args(a), normalise_args(b)
    if na == nb:
        return 1.0
    return round(SequenceMatcher(None, na, nb, autojunk=False).ratio(), 3)


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def near_identical(a: str | None, b: str | None) -> bool:
    """Arguments that ask for the same thing: similarity >= SIMILAR_ARGS and the same
    numbers (page 1 and page 2 are different requests)."""
    similarity = args_similarity(a, b)
    if similarity is None or similarity < SIMILAR_ARGS:
        return False
    return sorted(_NUMBER.findall(a or "")) == sorted(_NUMBER.findall(b or ""))


def failure_terms(text: str | None) -> list[str]:
    """Names of the failure-vocabulary terms found in ``text``, in table order."""
    if not text:
        return []
    return [name for name, pattern in _FAILURE_COMPILED if pattern.search(text)]


def acknowledges_absence(text: str | None) -> bool:
    """True when text says that nothing was found (the agent handled an empty result)."""
    return bool(text) and _ABSENCE.search(text) is not None


def _json_object(value: str | None) -> Any:
    if not value or value.lstrip()[:1] not in "{[":
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def unwrap_tool_args(value: str | None) -> str | None:
    """Tool arguments as the object the tool received: traceloop's
    ``{"args": [...], "kwargs": {...}}`` becomes its kwargs (positional arguments kept
    under "args" when there are any); anything else is returned as it is."""
    data = _json_object(value)
    if isinstance(data, dict) and set(data) == {"args", "kwargs"} and isinstance(
            data["kwargs"], dict) and isinstance(data["args"], list):
        unwrapped = dict(data["kwargs"])
        if data["args"]:
            unwrapped["args"] = data["args"]
        return json.dumps(unwrapped, ensure_ascii=False)
    return value


def unwrap_tool_result(value: str | None) -> str | None:
    """A tool result without LangChain's ToolMessage wrapper (``{"type": "tool", "data":
    {"content": ...}}`` or its serialised ``{"lc": 1, ..., "kwargs": {"content": ...}}``):
    the content, as text; anything else is returned as it is."""
    data = _json_object(value)
    if not isinstance(data, dict):
        return value
    body = None
    if data.get("type") == "tool" and isinstance(data.get("data"), dict):
        body = data["data"]
    elif data.get("lc") == 1 and "ToolMessage" in (data.get("id") or [])[-1:]:
        body = data.get("kwargs")
    if not isinstance(body, dict) or "content" not in body:
        return value
    content = body["content"]
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def value_texts(value: Any, key: str = "") -> list[tuple[str, str]]:
    """(key, text) for each string value in a JSON document (or JSON text), keys and
    numbers left out: where failure words may appear. ``success``/``ok`` flags are kept
    as ``"false"`` text so that ``success=false`` is still seen."""
    if isinstance(value, str):
        data = _json_object(value)
        if data is None:
            return [(key, value)]
        value = data
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in value_texts(v, str(k))]
    if isinstance(value, list):
        return [pair for v in value for pair in value_texts(v, key)]
    if isinstance(value, bool) and key.lower() in ("success", "ok"):
        return [(key, f"{key}={str(value).lower()}")]
    return []


def values_similarity(a: str | None, b: str | None) -> float | None:
    """Similarity of two argument strings by their values alone (JSON keys and syntax
    left out, so {"city": "Rome"} and {"city": "Oslo"} are different requests)."""
    if a is None or b is None:
        return None
    va = " ".join(text for _, text in value_texts(a)) if _json_object(a) is not None else a
    vb = " ".join(text for _, text in value_texts(b)) if _json_object(b) is not None else b
    return args_similarity(va, vb)
