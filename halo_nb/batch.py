"""Decoded spans → one columnar batch with the span-frame schema.

Every decoder (OTLP protobuf, OTLP JSON, snapshot import, test corpora) hands each
span to a ``SpanBatchBuilder`` as plain Python values; the builder derives the
frame's columns through ``semconv`` so there is one normalisation path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from . import semconv
from .schema import SPAN_COLUMNS, SPAN_SCHEMA

STATUS_NAMES = {0: "unset", 1: "ok", 2: "error"}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class SpanBatchBuilder:
    """Accumulates spans column by column; ``build()`` returns the frame."""

    def __init__(self) -> None:
        self._cols: dict[str, list[Any]] = {name: [] for name in SPAN_COLUMNS}

    def __len__(self) -> int:
        return len(self._cols["span_id"])

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
        resource: Mapping[str, Any] | None = None,
        otel_kind: str | None = None,
        trace_state: str | None = None,
        scope_name: str | None = None,
        scope_version: str | None = None,
        origin: str | None = None,
    ) -> None:
        """Add one span. ``events`` items are ``{"name", "time_ns", "attributes"}``;
        ``end_ns`` None or 0 means the span never ended."""
        attrs = attributes or {}
        res = resource or {}
        kind = semconv.span_kind(attrs)
        status = status_code if isinstance(status_code, str) else STATUS_NAMES.get(status_code)
        if status not in ("unset", "ok", "error"):
            raise ValueError(f"status: unknown status code {status_code!r}")
        message = status_message or None
        if message is None:
            message = _exception_message(events)
        tokens_in = semconv.as_int(semconv.first(attrs, semconv.TOKENS_IN))
        tokens_out = semconv.as_int(semconv.first(attrs, semconv.TOKENS_OUT))
        tokens_total = semconv.as_int(semconv.first(attrs, semconv.TOKENS_TOTAL))
        if tokens_total is None and (tokens_in is not None or tokens_out is not None):
            tokens_total = (tokens_in or 0) + (tokens_out or 0)
        tool_args = semconv.first(attrs, semconv.TOOL_ARGS)
        tool_result = semconv.first(attrs, semconv.TOOL_RESULT)
        if kind == "tool":
            if tool_args is None:
                tool_args = attrs.get("input.value")
            if tool_result is None:
                tool_result = attrs.get("output.value")
        end = end_ns or None
        c = self._cols
        c["trace_id"].append(trace_id)
        c["span_id"].append(span_id)
        c["parent_span_id"].append(parent_span_id or None)
        c["name"].append(name)
        c["kind"].append(kind)
        c["start_ns"].append(start_ns)
        c["end_ns"].append(end)
        c["duration_ms"].append(None if end is None else (end - start_ns) / 1e6)
        c["status"].append(status)
        c["status_message"].append(message)
        c["service"].append(semconv.as_text(res.get(semconv.SERVICE_NAME)))
        c["model"].append(semconv.as_text(semconv.first(attrs, semconv.MODEL)))
        c["tokens_in"].append(tokens_in)
        c["tokens_out"].append(tokens_out)
        c["tokens_total"].append(tokens_total)
        c["tool_name"].append(semconv.as_text(semconv.first(attrs, semconv.TOOL_NAME)))
        c["tool_args"].append(semconv.as_text(tool_args))
        c["tool_result"].append(semconv.as_text(tool_result))
        c["input"].append(semconv.as_text(semconv.first(attrs, semconv.INPUT)))
        c["output"].append(semconv.as_text(semconv.first(attrs, semconv.OUTPUT)))
        c["finish_reason"].append(semconv.finish_reason(attrs))
        c["attributes"].append(_dumps(dict(attrs)))
        c["events"].append(_dumps([dict(e) for e in events]))
        c["otel_kind"].append(otel_kind)
        c["trace_state"].append(trace_state or None)
        c["scope_name"].append(scope_name or None)
        c["scope_version"].append(scope_version or None)
        c["resource"].append(_dumps(dict(res)))
        c["origin"].append(origin)

    def build(self) -> pl.DataFrame:
        return pl.DataFrame(self._cols, schema=SPAN_SCHEMA)


def _exception_message(events: Sequence[Mapping[str, Any]]) -> str | None:
    for event in events:
        if event.get("name") == "exception":
            attrs = event.get("attributes") or {}
            message = attrs.get("exception.message")
            if message is not None:
                return str(message)
            kind = attrs.get("exception.type")
            if kind is not None:
                return str(kind)
    return None
