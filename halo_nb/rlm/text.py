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

FAILURE_TERMS: tuple[tuple[str, str], ...] = (
    ("success_false", r"\"?(?:success|ok)\"?\s*[:=]\s*\"?false\b"),
    ("timeout", r"\btime[ds]?[ -]?out\b|\btimeout\b"),
    ("rate_limit", r"\brate[ _-]?limit(?:ed|s)?\b|\btoo many requests\b"),
    ("quota", r"\bquota\b"),
    ("max_turns", r"\bmax(?:imum)?[ _-]?(?:turns|iterations|steps|rounds)\b"),
    ("exceeded", r"\bexceed(?:ed|s)\b"),
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
