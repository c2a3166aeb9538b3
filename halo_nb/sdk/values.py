"""Arbitrary Python values → span attribute values, safely.

Agents pass anything as inputs and outputs (pydantic models, dataclasses, numpy
arrays, objects with cycles); recording them must never raise and never hang.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import math
from collections.abc import Mapping, Sequence, Set
from pathlib import PurePath
from typing import Any

# Longest text recorded for one value; longer values are cut with a marker.
MAX_VALUE_CHARS = 200_000
_MAX_DEPTH = 32
_INT64 = (-(2**63), 2**63 - 1)

Primitive = str | bool | int | float


def to_text(value: Any) -> str:
    """A string as it is; anything else as JSON (never raises)."""
    text = value if isinstance(value, str) else json.dumps(
        jsonable(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return truncate(text)


def truncate(text: str) -> str:
    if len(text) <= MAX_VALUE_CHARS:
        return text
    cut = len(text) - MAX_VALUE_CHARS
    return f"{text[:MAX_VALUE_CHARS]}…[truncated {cut} chars]"


def to_attribute(value: Any) -> Primitive | list[Primitive]:
    """A value OpenTelemetry accepts as an attribute: primitives and homogeneous
    lists of them as they are, everything else as JSON text."""
    if isinstance(value, (bool, str, float)):
        return truncate(value) if isinstance(value, str) else value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else str(value)
    if isinstance(value, (list, tuple)) and value:
        kinds = {type(item) for item in value}
        if len(kinds) == 1 and kinds <= {str, bool, int, float}:
            return [to_attribute(item) for item in value]  # type: ignore[misc]
    return to_text(value)


def jsonable(value: Any, _depth: int = 0, _seen: frozenset[int] = frozenset()) -> Any:
    """A structure ``json.dumps`` accepts: containers recursed, cycles and excess
    depth marked, unknown objects by their ``repr``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if _depth >= _MAX_DEPTH:
        return "<max depth>"
    if id(value) in _seen:
        return "<cycle>"
    seen = _seen | {id(value)}
    depth = _depth + 1
    if isinstance(value, Mapping):
        return {_key(k): jsonable(v, depth, seen) for k, v in value.items()}
    if isinstance(value, (list, tuple, Set)) or _is_plain_sequence(value):
        return [jsonable(v, depth, seen) for v in value]
    converted = _convert(value)
    if converted is not value:
        return jsonable(converted, depth, seen)
    return _repr(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return str(key)
    return to_text(key)


def _is_plain_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def _convert(value: Any) -> Any:
    """A simpler stand-in for well-known kinds of object, or ``value`` itself."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(raw).decode("ascii")
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    for method in ("model_dump", "tolist", "to_list", "to_dict"):  # pydantic, numpy, frames
        convert = getattr(value, method, None)
        if callable(convert) and not isinstance(value, type):
            try:
                return convert()
            except Exception:  # noqa: BLE001 - a broken converter falls back to repr
                return value
    return value


def _repr(value: Any) -> str:
    try:
        return truncate(repr(value))
    except Exception:  # noqa: BLE001 - repr of user objects may raise
        return f"<unrepresentable {type(value).__name__}>"
