"""Decoded spans → one columnar batch with the span-frame schema.

Every decoder (OTLP protobuf, OTLP JSON, snapshot import, test corpora) hands each
span to a ``SpanFrameBuilder`` as plain Python values; the builder derives the
frame's columns through the attribute rulebook (``rules``), so there is one
normalisation path. It builds a Polars DataFrame; the collector's native path hands the
store a ``SpanBatch`` (``span_batch.py``) instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import polars as pl

from ..schema import SPAN_COLUMNS, SPAN_SCHEMA
from . import rules
from .rules import as_int, as_text, first

STATUS_NAMES = {0: "unset", 1: "ok", 2: "error"}
_STATUSES = frozenset(STATUS_NAMES.values())
_EMPTY_LIST_JSON = "[]"


def _dumps(value: Any) -> str:
    """Compact JSON text in the canonical form both decoders write (_wire.c, "Numbers"):
    json.dumps's, floats as repr() spells them, a non-finite float as null. orjson writes
    the same for values without floats and is faster; floats always take the standard
    encoder, so no orjson version can change a byte."""
    if not _has_float(value):
        try:
            return orjson.dumps(value).decode()
        except (TypeError, orjson.JSONEncodeError):
            pass  # big ints, lone surrogates, non-str keys: the standard encoder takes them
    return json.dumps(_finite(value), separators=(",", ":"), ensure_ascii=False, default=str)


def _has_float(value: Any) -> bool:
    if type(value) is float:
        return True
    if isinstance(value, Mapping):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_float(v) for v in value)
    return False


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None (JSON has no spelling for them)."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class SpanFrameBuilder:
    """Accumulates spans as rows of column values; ``build()`` returns the frame."""

    def __init__(self) -> None:
        self._rows: list[tuple[Any, ...]] = []
        # Spans of one request share their resource dict: encode it once (by identity).
        self._resource: Mapping[str, Any] | None = None
        self._resource_json = "{}"
        self._service: str | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def add(
        self,
        *,
        trace_id: str,
        span_id: str,
        parent_span_id: str | None,
        name: str,
        start_ns: int,
        end_ns: int | None,
        status_code: int | str = 0,
        status_message: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        events: Sequence[Mapping[str, Any]] = (),
        links: Sequence[Mapping[str, Any]] = (),
        resource: Mapping[str, Any] | None = None,
        otel_kind: str | None = None,
        trace_state: str | None = None,
        scope_name: str | None = None,
        scope_version: str | None = None,
        origin: str | None = None,
    ) -> None:
        """Add one span. ``events`` items are ``{"name", "time_ns", "attributes"}``,
        ``links`` items ``{"trace_id", "span_id", "trace_state", "attributes"}``;
        ``end_ns`` None or 0 means the span never ended."""
        attrs = attributes or {}
        if resource is not self._resource:
            res = resource or {}
            self._resource = resource
            self._resource_json = _dumps(dict(res))
            self._service = as_text(res.get(rules.SERVICE_NAME))
        kind = rules.span_kind(attrs)
        status = status_code if isinstance(status_code, str) else STATUS_NAMES.get(status_code)
        if status not in _STATUSES:
            raise ValueError(f"status: unknown status code {status_code!r}")
        message = status_message or None
        if message is None and events:
            message = _exception_message(events)
        tokens_in = as_int(first(attrs, rules.TOKENS_IN))
        tokens_out = as_int(first(attrs, rules.TOKENS_OUT))
        tokens_total = as_int(first(attrs, rules.TOKENS_TOTAL))
        if tokens_total is None and (tokens_in is not None or tokens_out is not None):
            tokens_total = rules.add_counts(tokens_in, tokens_out)
        tool_args = first(attrs, rules.TOOL_ARGS)
        tool_result = first(attrs, rules.TOOL_RESULT)
        tool_name = first(attrs, rules.TOOL_NAME)
        if kind == "tool":
            if tool_name is None:
                tool_name = name
            if tool_args is None:
                tool_args = first(attrs, rules.TOOL_ARGS_FALLBACK)
            if tool_result is None:
                tool_result = first(attrs, rules.TOOL_RESULT_FALLBACK)
        end = end_ns or None
        self._rows.append((
            trace_id,
            span_id,
            parent_span_id or None,
            name,
            kind,
            start_ns,
            end,
            None if end is None else (end - start_ns) / 1e6,
            status,
            message,
            self._service,
            as_text(first(attrs, rules.MODEL)),
            tokens_in,
            tokens_out,
            tokens_total,
            as_text(tool_name),
            as_text(tool_args),
            as_text(tool_result),
            as_text(first(attrs, rules.INPUT)),
            as_text(first(attrs, rules.OUTPUT)),
            rules.finish_reason(attrs),
            _dumps(attrs if type(attrs) is dict else dict(attrs)),
            _dumps([dict(e) for e in events]) if events else _EMPTY_LIST_JSON,
            _dumps([dict(link) for link in links]) if links else _EMPTY_LIST_JSON,
            otel_kind,
            trace_state or None,
            scope_name or None,
            scope_version or None,
            self._resource_json,
            origin,
        ))

    def build(self) -> pl.DataFrame:
        if not self._rows:
            return pl.DataFrame(schema=SPAN_SCHEMA)
        columns = zip(*self._rows, strict=True)
        return pl.DataFrame([pl.Series(name, values, dtype=SPAN_SCHEMA[name])
                             for name, values in zip(SPAN_COLUMNS, columns, strict=True)])


def _exception_message(events: Sequence[Mapping[str, Any]]) -> str | None:
    for event in events:
        if event.get("name") == rules.EXCEPTION_EVENT:
            attrs = event.get("attributes") or {}
            message = attrs.get(rules.EXCEPTION_MESSAGE)
            if message is not None:
                return str(message)
            kind = attrs.get(rules.EXCEPTION_TYPE)
            if kind is not None:
                return str(kind)
    return None
