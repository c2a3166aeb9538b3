"""OTLP trace requests (protobuf or JSON) → one span frame, through SpanFrameBuilder.

Public functions:

- ``decode_protobuf(body, origin=None)``: the bytes of an ``ExportTraceServiceRequest``,
  decoded natively (``_wire.c``: no GIL, columns straight into Arrow buffers) or, for what
  the native decoder leaves to it, by ``decode_protobuf_reference``, the Python decoder
  that defines the result (``tests/test_native_decoder.py`` holds the two equal).
- ``decode_json(body, origin=None)``: the OTLP JSON mapping, as bytes, str, or an already
  parsed dict (snapshot import passes its dict here; ``decode_request_dict`` is the same
  function under the name that says so). Ids are hex; int64 values may be JSON strings
  or numbers; field names may be lowerCamelCase (the OTLP spelling) or snake_case (what
  protobuf's JSON parser also accepts); enums may be numbers or their names
  (``SPAN_KIND_SERVER``, ``STATUS_CODE_ERROR``).

Both return a ``DecodeResult``: ``frame`` (SPAN_SCHEMA), ``rejected`` (spans dropped)
and ``errors`` (one line per rejected span naming where it was and why, e.g.
``resourceSpans[0].scopeSpans[0].spans[3]: traceId must be 16 bytes, got 15``),
which the collector reports as OTLP partial success. A body that is not a request at
all raises ``OTLPDecodeError`` (a ValueError) whose message names the problem.
``max_attributes`` rejects a span with more attributes than that (counted as sent,
duplicate keys included) rather than storing part of it.

JSON attribute values are held to their OTLP types: ``boolValue`` must be a JSON
boolean, ``intValue`` an integer (a number with no fraction, or a string of digits),
``doubleValue`` a number or a numeric string ("NaN", "Infinity"), ``stringValue`` and
``bytesValue`` strings (the latter base64), and values nest at most
``MAX_VALUE_DEPTH`` levels. A value that breaks this rejects its span (partial success,
with the reason), as a bad id does: the other spans of the request are sound, and a
guess (``"false"`` read as true, ``1.9`` as 1) would store something never sent.
Duplicate attribute keys keep the first key's position and the last value, as a dict
built in order does, in both decoders.

Attribute values become plain Python values: strings, bools, ints, floats, lists and
dicts; bytes become base64 text (as in OTLP JSON), so both encodings give the same
frame. ``otel_kind`` holds the OTel span kind in lower case: ``internal``,
``server``, ``client``, ``producer``, ``consumer`` or ``unspecified``.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from array import array
from collections.abc import Mapping
from typing import Any

import orjson
import polars as pl
import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from ..schema import KINDS, SPAN_COLUMNS, STATUSES, empty_spans
from . import _wire, rules
from .frame_builder import STATUS_NAMES, SpanFrameBuilder
from .rules import INT64_MAX
from .span_batch import SpanBatch, frame_of

OTEL_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
_KIND_NAMES = {f"SPAN_KIND_{k.upper()}": k for k in OTEL_KINDS}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
MAX_REPORTED_ERRORS = 20
# JSON attribute values nested deeper than this reject their span. Protobuf's parser stops
# at 100 messages, about 47 array levels; this bounds the decoder's recursion the same way.
MAX_VALUE_DEPTH = 64


class OTLPDecodeError(ValueError):
    """The body is not an OTLP trace request; nothing in it can be stored."""


class DecodeResult:
    """The spans of one request (``frame``), how many were rejected and why.

    The native decoder's result is a ``SpanBatch`` holding an Arrow table, which becomes
    a Polars frame only when ``frame`` is first read: the collector hands the batch to
    the store as it is (see span_batch.py)."""

    def __init__(self, frame: pl.DataFrame | None = None, rejected: int = 0,
                 errors: list[str] | None = None, *, batch: SpanBatch | None = None) -> None:
        if (frame is None) == (batch is None):
            raise ValueError("a DecodeResult holds a frame or a SpanBatch")
        self._frame = frame
        self._batch = batch
        self.rejected = rejected
        self.errors = errors if errors is not None else []

    @property
    def frame(self) -> pl.DataFrame:
        if self._frame is None:
            assert self._batch is not None
            self._frame = frame_of([self._batch])
        return self._frame

    def span_batch(self) -> SpanBatch:
        """The spans as the store appends them."""
        if self._batch is None:
            self._batch = SpanBatch.of_frame(self.frame)
        return self._batch

    @property
    def accepted(self) -> int:
        return self._batch.rows if self._batch is not None else self.frame.height

    def error_message(self) -> str:
        """One line for an OTLP partial-success ``error_message``."""
        shown = "; ".join(self.errors[:MAX_REPORTED_ERRORS])
        more = len(self.errors) - MAX_REPORTED_ERRORS
        return shown + (f"; and {more} more" if more > 0 else "")


# ---- protobuf ------------------------------------------------------------------------------


def decode_protobuf(body: bytes, origin: str | None = None, *,
                    max_attributes: int | None = None) -> DecodeResult:
    """Decode an OTLP/HTTP protobuf ``ExportTraceServiceRequest``: natively, or by the
    reference decoder when the native one leaves the request to it."""
    result = decode_native(body, origin, max_attributes=max_attributes)
    if result is None:
        return decode_protobuf_reference(body, origin, max_attributes=max_attributes)
    return result


def decode_native(body: bytes, origin: str | None = None, *,
                  max_attributes: int | None = None) -> DecodeResult | None:
    """The native decoder (``_wire.c``) alone: the frame as ``decode_protobuf_reference``
    builds it, or None for a request outside its common path (malformed input, rejected
    spans, values whose Python conversion it does not repeat)."""
    decoded = _wire.decode(body, max_attributes or 0)
    if decoded is None:
        return None
    rows, buffers, keys, trace_ids, row_traces = decoded
    if rows == 0:
        return DecodeResult(empty_spans())
    arrays = [_arrow_array(name, kind, rows, *column)
              for (name, kind), column in zip(_wire.COLUMNS, buffers, strict=True)]
    arrays.append(pa.array([origin] * rows, pa.string_view()))
    table = pa.Table.from_arrays(arrays, schema=_NATIVE_SCHEMA)
    return DecodeResult(batch=SpanBatch(table, array("Q", keys).tolist(), trace_ids,
                                        array("I", row_traces).tolist()))


def _arrow_array(name: str, kind: str, rows: int, data: bytes, views: bytes | None,
                 validity: bytes | None) -> pa.Array:
    valid = None if validity is None else pa.py_buffer(validity)
    if kind == "str":
        return pa.Array.from_buffers(pa.string_view(), rows,
                                     [valid, pa.py_buffer(views), pa.py_buffer(data)])
    if kind == "code":
        codes = pa.Array.from_buffers(pa.uint8(), rows, [valid, pa.py_buffer(data)])
        return pa.DictionaryArray.from_arrays(codes, _ENUM_VALUES[name])
    return pa.Array.from_buffers(_ARROW_NUMBERS[kind], rows, [valid, pa.py_buffer(data)])


def _native_schema() -> pa.Schema:
    """The Arrow schema the native columns are assembled under: string views (Polars' own
    layout), and the Enum columns as dictionaries carrying the metadata Polars itself
    writes for an Enum (taken from Polars, so it turns them back into the Enum)."""
    exported = empty_spans().to_arrow().schema
    kinds = dict(_wire.COLUMNS)
    fields = []
    for name in SPAN_COLUMNS:
        kind = kinds.get(name, "str")
        if kind == "code":
            fields.append(pa.field(name, pa.dictionary(pa.uint8(), pa.string_view()),
                                   metadata=exported.field(name).metadata))
        else:
            fields.append(pa.field(name, _ARROW_NUMBERS.get(kind, pa.string_view())))
    return pa.schema(fields)


def _native_tables() -> dict[str, Any]:
    """The rulebook's tables in the form ``_wire.configure`` takes: the native decoder has no
    attribute names of its own. Kinds go as codes, their index in the frame's Enum."""
    code = KINDS.index
    identity = {kind: code(kind) for kind in KINDS}
    return {
        "kind_sources": [
            (key, identity if mapping is None
             else {value: code(kind) for value, kind in mapping.items()})
            for key, mapping in rules.KIND_SOURCES],
        "kind_if_model": code("llm"),
        "kind_default": code("unknown"),
        "tool_kind": code("tool"),
        "otel_kinds": OTEL_KINDS,
        "model": rules.MODEL,
        "tokens_in": rules.TOKENS_IN,
        "tokens_out": rules.TOKENS_OUT,
        "tokens_total": rules.TOKENS_TOTAL,
        "tool_name": rules.TOOL_NAME,
        "tool_args": rules.TOOL_ARGS,
        "tool_result": rules.TOOL_RESULT,
        "input": rules.INPUT,
        "output": rules.OUTPUT,
        "finish_reason": rules.FINISH_REASON,
        "service_name": rules.SERVICE_NAME,
        "tool_args_fallback": rules.TOOL_ARGS_FALLBACK,
        "tool_result_fallback": rules.TOOL_RESULT_FALLBACK,
        "exception_event": rules.EXCEPTION_EVENT,
        "exception_message": rules.EXCEPTION_MESSAGE,
        "exception_type": rules.EXCEPTION_TYPE,
        "hash_key": os.urandom(16),
    }


_wire.configure(_native_tables())
_ARROW_NUMBERS = {"i64": pa.int64(), "f64": pa.float64()}
# The native decoder writes a status as its OTLP code, so STATUSES must be in code order.
assert list(STATUSES) == [STATUS_NAMES[code] for code in range(len(STATUSES))]
_ENUM_VALUES = {"kind": pa.array(KINDS, pa.string_view()),
                "status": pa.array(STATUSES, pa.string_view())}
_NATIVE_SCHEMA = _native_schema()


def decode_protobuf_reference(body: bytes, origin: str | None = None, *,
                              max_attributes: int | None = None) -> DecodeResult:
    """Decode an OTLP/HTTP protobuf ``ExportTraceServiceRequest`` in Python, through
    ``SpanFrameBuilder``: the definition the native decoder is held to."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OTLPDecodeError(
            f"body is not a valid protobuf ExportTraceServiceRequest ({exc})") from None
    builder = SpanFrameBuilder()
    add = builder.add
    errors: list[str] = []
    for r, resource_spans in enumerate(request.resource_spans):
        resource = _pb_attributes(resource_spans.resource.attributes)
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            scope = scope_spans.scope
            scope_name = scope.name
            scope_version = scope.version
            for i, span in enumerate(scope_spans.spans):
                trace_id = span.trace_id
                span_id = span.span_id
                parent = span.parent_span_id
                status = span.status
                code = status.code
                start = span.start_time_unix_nano
                end = span.end_time_unix_nano
                if (len(trace_id) != 16 or len(span_id) != 8 or trace_id == _ZERO_TRACE
                        or span_id == _ZERO_SPAN or (parent and len(parent) != 8)
                        or not 0 <= code <= 2 or start > INT64_MAX or end > INT64_MAX):
                    reason = _pb_problem(trace_id, span_id, parent, code, start, end)
                    errors.append(f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]: {reason}")
                    continue
                if max_attributes and len(span.attributes) > max_attributes:
                    errors.append(f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]: "
                                  + _too_many_attributes(len(span.attributes), max_attributes))
                    continue
                events = span.events
                kind = span.kind
                add(
                    trace_id=trace_id.hex(),
                    span_id=span_id.hex(),
                    parent_span_id=parent.hex() if parent else None,
                    name=span.name,
                    start_ns=start,
                    end_ns=end,
                    status_code=code,
                    status_message=status.message,
                    attributes=_pb_attributes(span.attributes),
                    events=[
                        {"name": e.name, "time_ns": e.time_unix_nano,
                         "attributes": _pb_attributes(e.attributes)}
                        for e in events
                    ] if events else (),
                    links=[
                        {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(),
                         "trace_state": link.trace_state,
                         "attributes": _pb_attributes(link.attributes)}
                        for link in span.links
                    ] if span.links else (),
                    resource=resource,
                    otel_kind=OTEL_KINDS[kind] if 0 <= kind < 6 else "unspecified",
                    trace_state=span.trace_state,
                    scope_name=scope_name,
                    scope_version=scope_version,
                    origin=origin,
                )
    return DecodeResult(builder.build(), len(errors), errors)


_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


def _too_many_attributes(count: int, limit: int) -> str:
    return (f"{count} attributes exceed the limit of {limit} per span "
            "(max_attributes_per_span); the span was not stored")


def _pb_problem(trace_id: bytes, span_id: bytes, parent: bytes, code: int, start: int,
                end: int) -> str:
    if len(trace_id) != 16:
        return f"traceId must be 16 bytes, got {len(trace_id)}"
    if not any(trace_id):
        return "traceId must not be all zeros"
    if len(span_id) != 8:
        return f"spanId must be 8 bytes, got {len(span_id)}"
    if not any(span_id):
        return "spanId must not be all zeros"
    if parent and len(parent) != 8:
        return f"parentSpanId must be empty or 8 bytes, got {len(parent)}"
    if start > INT64_MAX:
        return f"startTimeUnixNano {start} is out of range"
    if end > INT64_MAX:
        return f"endTimeUnixNano {end} is out of range"
    return f"status.code {code} is not a StatusCode (0, 1 or 2)"


_PB_SCALARS = frozenset(("string_value", "bool_value", "int_value", "double_value"))


def _pb_attributes(key_values: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in key_values:
        value = kv.value
        which = value.WhichOneof("value")
        out[kv.key] = getattr(value, which) if which in _PB_SCALARS else _pb_value(value, which)
    return out


def _pb_value(value: Any, which: str | None) -> Any:
    if which is None:
        return None
    if which in _PB_SCALARS:
        return getattr(value, which)
    if which == "array_value":
        return [_pb_value(x, x.WhichOneof("value")) for x in value.array_value.values]
    if which == "kvlist_value":
        return _pb_attributes(value.kvlist_value.values)
    return base64.b64encode(value.bytes_value).decode("ascii")


# ---- JSON ----------------------------------------------------------------------------------


def decode_json(body: bytes | str | Mapping[str, Any], origin: str | None = None, *,
                max_attributes: int | None = None) -> DecodeResult:
    """Decode an OTLP/HTTP JSON ``ExportTraceServiceRequest`` (bytes, str or parsed dict)."""
    if isinstance(body, Mapping):
        request = body
    else:
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise OTLPDecodeError(f"body is not valid UTF-8 JSON ({exc})") from None
    if not isinstance(request, Mapping):
        raise OTLPDecodeError(
            f"body must be a JSON object (ExportTraceServiceRequest), got {_type(request)}")
    resource_spans_list = _list(request, "resourceSpans", "resource_spans", "")
    builder = SpanFrameBuilder()
    errors: list[str] = []
    for r, resource_spans in enumerate(resource_spans_list):
        where_r = f"resourceSpans[{r}]"
        _need_object(resource_spans, where_r)
        resource_obj = resource_spans.get("resource") or {}
        _need_object(resource_obj, f"{where_r}.resource")
        resource = _json_attributes(resource_obj.get("attributes"), f"{where_r}.resource")
        scope_spans_list = _list(resource_spans, "scopeSpans", "scope_spans", where_r)
        for s, scope_spans in enumerate(scope_spans_list):
            where_s = f"{where_r}.scopeSpans[{s}]"
            _need_object(scope_spans, where_s)
            scope = scope_spans.get("scope") or {}
            _need_object(scope, f"{where_s}.scope")
            for i, span in enumerate(_list(scope_spans, "spans", "spans", where_s)):
                where = f"{where_s}.spans[{i}]"
                try:
                    fields = _json_span(span, max_attributes)
                except _SpanProblem as exc:
                    errors.append(f"{where}: {exc}")
                    continue
                builder.add(
                    **fields,
                    resource=resource,
                    scope_name=_str(scope.get("name")),
                    scope_version=_str(scope.get("version")),
                    origin=origin,
                )
    return DecodeResult(builder.build(), len(errors), errors)


decode_request_dict = decode_json


class _SpanProblem(ValueError):
    pass


def _json_span(span: Any, max_attributes: int | None) -> dict[str, Any]:
    if not isinstance(span, Mapping):
        raise _SpanProblem(f"must be an object, got {_type(span)}")
    attribute_items = span.get("attributes")
    if (max_attributes and isinstance(attribute_items, list)
            and len(attribute_items) > max_attributes):
        raise _SpanProblem(_too_many_attributes(len(attribute_items), max_attributes))
    trace_id = _json_id(_get(span, "traceId", "trace_id"), "traceId", 16, required=True)
    span_id = _json_id(_get(span, "spanId", "span_id"), "spanId", 8, required=True)
    parent = _json_id(_get(span, "parentSpanId", "parent_span_id"), "parentSpanId", 8,
                      required=False)
    status = span.get("status") or {}
    if not isinstance(status, Mapping):
        raise _SpanProblem(f"status must be an object, got {_type(status)}")
    code = status.get("code", 0)
    code = _STATUS_NAMES.get(code, code) if isinstance(code, str) else code
    if code not in (0, 1, 2) or isinstance(code, bool):
        raise _SpanProblem(f"status.code {code!r} is not a StatusCode (0, 1 or 2)")
    kind = span.get("kind", 0)
    # Like protobuf, an unknown kind is kept as "unspecified" rather than losing the span.
    if isinstance(kind, str):
        otel_kind = _KIND_NAMES.get(kind, "unspecified")
    elif isinstance(kind, int) and 0 <= kind < len(OTEL_KINDS):
        otel_kind = OTEL_KINDS[kind]
    else:
        otel_kind = "unspecified"
    try:
        attributes = _json_attributes(attribute_items, "attributes")
        events = [_json_event(e, n) for n, e in enumerate(span.get("events") or ())]
        links = [_json_link(link, n) for n, link in enumerate(span.get("links") or ())]
    except OTLPDecodeError as exc:
        raise _SpanProblem(str(exc)) from None
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent,
        "name": _str(span.get("name")) or "",
        "start_ns": _int64(_get(span, "startTimeUnixNano", "start_time_unix_nano"),
                           "startTimeUnixNano"),
        "end_ns": _int64(_get(span, "endTimeUnixNano", "end_time_unix_nano"),
                         "endTimeUnixNano"),
        "status_code": code,
        "status_message": _str(status.get("message")),
        "attributes": attributes,
        "events": events,
        "links": links,
        "otel_kind": otel_kind,
        "trace_state": _str(_get(span, "traceState", "trace_state")),
    }


def _json_event(event: Any, n: int) -> dict[str, Any]:
    if not isinstance(event, Mapping):
        raise OTLPDecodeError(f"events[{n}] must be an object, got {_type(event)}")
    try:
        time_ns = _int64(_get(event, "timeUnixNano", "time_unix_nano"), "timeUnixNano")
    except _SpanProblem as exc:
        raise OTLPDecodeError(f"events[{n}].{exc}") from None
    return {
        "name": _str(event.get("name")) or "",
        "time_ns": time_ns,
        "attributes": _json_attributes(event.get("attributes"), f"events[{n}].attributes"),
    }


def _json_link(link: Any, n: int) -> dict[str, Any]:
    if not isinstance(link, Mapping):
        raise OTLPDecodeError(f"links[{n}] must be an object, got {_type(link)}")
    try:
        trace_id = _json_id(_get(link, "traceId", "trace_id"), "traceId", 16, required=True)
        span_id = _json_id(_get(link, "spanId", "span_id"), "spanId", 8, required=True)
    except _SpanProblem as exc:
        raise OTLPDecodeError(f"links[{n}].{exc}") from None
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "trace_state": _str(_get(link, "traceState", "trace_state")) or "",
        "attributes": _json_attributes(link.get("attributes"), f"links[{n}].attributes"),
    }


def _json_id(value: Any, name: str, size: int, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise _SpanProblem(f"{name} is missing")
        return None
    if not isinstance(value, str):
        raise _SpanProblem(f"{name} must be a hex string, got {_type(value)}")
    if len(value) == 2 * size:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise _SpanProblem(f"{name} {value!r} is not hex") from None
    elif len(value) == 4 * ((size + 2) // 3):
        # Protobuf's canonical JSON writes bytes as base64; accept it when unambiguous.
        try:
            raw = base64.b64decode(value, validate=True)
        except binascii.Error:
            raise _SpanProblem(f"{name} {value!r} is neither hex nor base64") from None
    else:
        raise _SpanProblem(f"{name} must be {size} bytes ({2 * size} hex digits), "
                           f"got {len(value)} characters")
    if len(raw) != size:
        raise _SpanProblem(f"{name} must be {size} bytes, got {len(raw)}")
    if not any(raw):
        raise _SpanProblem(f"{name} must not be all zeros")
    return raw.hex()


def _json_attributes(items: Any, where: str, depth: int = 0) -> dict[str, Any]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise OTLPDecodeError(f"{where} must be a list of {{key, value}}, got {_type(items)}")
    out: dict[str, Any] = {}
    for n, kv in enumerate(items):
        if not isinstance(kv, Mapping) or not isinstance(kv.get("key"), str):
            raise OTLPDecodeError(f"{where}[{n}] must be an object with a string key")
        key = kv["key"]
        out[key] = _json_value(kv.get("value"), f"{where}[{n}] ({_cut(key)})", depth)
    return out


_INTEGER_TEXT = re.compile(r"-?[0-9]+")


def _json_value(value: Any, where: str, depth: int = 0) -> Any:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise OTLPDecodeError(f"{where}: value must be an AnyValue object, got {_type(value)}")
    for key, item in value.items():
        if key in ("stringValue", "string_value"):
            if not isinstance(item, str):
                raise OTLPDecodeError(f"{where}: stringValue must be a string, got {_type(item)}")
            return item
        if key in ("boolValue", "bool_value"):
            if not isinstance(item, bool):
                raise OTLPDecodeError(f"{where}: boolValue must be true or false, got "
                                      f"{_type(item)} {_shown(item)}")
            return item
        if key in ("intValue", "int_value"):
            return _json_int(item, where)
        if key in ("doubleValue", "double_value"):
            return _json_double(item, where)
        if key in ("arrayValue", "array_value", "kvlistValue", "kvlist_value"):
            if depth >= MAX_VALUE_DEPTH:
                raise OTLPDecodeError(f"{where}: value nested deeper than {MAX_VALUE_DEPTH} "
                                      "levels")
            values = _json_values(item, where, key)
            if key in ("arrayValue", "array_value"):
                return [_json_value(v, f"{where}[{n}]", depth + 1) for n, v in enumerate(values)]
            return _json_attributes(values, where, depth + 1)
        if key in ("bytesValue", "bytes_value"):
            if not isinstance(item, str) or not _is_base64(item):
                raise OTLPDecodeError(f"{where}: bytesValue must be base64 text, got "
                                      f"{_type(item)} {_shown(item)}")
            return item
    return None


def _json_int(item: Any, where: str) -> int:
    """An OTLP JSON intValue as ProtoJSON reads one: a number without a fraction or a
    string of digits; never a boolean, never a number rounded."""
    if isinstance(item, int) and not isinstance(item, bool):
        return item
    if isinstance(item, float) and item.is_integer():
        return int(item)
    if isinstance(item, str) and _INTEGER_TEXT.fullmatch(item):
        try:
            return int(item)
        except ValueError:  # more digits than Python converts
            pass
    raise OTLPDecodeError(f"{where}: intValue {_shown(item)} is not an integer")


def _json_double(item: Any, where: str) -> float:
    if isinstance(item, (int, float)) and not isinstance(item, bool):
        try:
            return float(item)
        except OverflowError:
            pass
    elif isinstance(item, str):
        try:
            return float(item)
        except ValueError:
            pass
    raise OTLPDecodeError(f"{where}: doubleValue {_shown(item)} is not a number")


def _json_values(item: Any, where: str, key: str) -> list[Any]:
    if item is None:
        return []
    if not isinstance(item, Mapping):
        raise OTLPDecodeError(f"{where}: {key} must be an object, got {_type(item)}")
    values = item.get("values")
    if values is None:
        return []
    if not isinstance(values, list):
        raise OTLPDecodeError(f"{where}: {key}.values must be a list, got {_type(values)}")
    return values


def _is_base64(text: str) -> bool:
    """Standard or URL-safe base64, as ProtoJSON accepts for bytes."""
    for altchars in (None, b"-_"):
        try:
            base64.b64decode(text, altchars=altchars, validate=True)
            return True
        except (binascii.Error, ValueError):
            continue
    return False


def _shown(value: Any) -> str:
    """``repr(value)``, cut short: an error message never carries a whole hostile value."""
    if isinstance(value, (dict, list)):
        return _type(value)
    return _cut(repr(value[:61] if isinstance(value, str) else value))


def _cut(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _get(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _list(obj: Mapping[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = _get(obj, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        path = f"{where}.{camel}" if where else camel
        raise OTLPDecodeError(f"{path} must be a list, got {_type(value)}")
    return value


def _need_object(value: Any, where: str) -> None:
    if not isinstance(value, Mapping):
        raise OTLPDecodeError(f"{where} must be an object, got {_type(value)}")


def _int64(value: Any, name: str) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise _SpanProblem(f"{name} must be an integer, got a boolean")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _SpanProblem(f"{name} {value!r} is not an integer") from None
    if not 0 <= number <= INT64_MAX:
        raise _SpanProblem(f"{name} {value!r} is out of range")
    return number


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", int: "a number",
            float: "a number", bool: "a boolean", type(None): "null"}.get(type(value),
                                                                           type(value).__name__)
