"""Hand-built OTLP trace requests for tests: protobuf messages and their OTLP JSON form."""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

_ids = itertools.count(1)
NOW_NS = time.time_ns()


def new_trace_id() -> str:
    return f"{0xABC << 100 | next(_ids):032x}"


def new_span_id() -> str:
    return f"{0xF << 60 | next(_ids):016x}"


def span(name: str = "span", *, trace_id: str | None = None, span_id: str | None = None,
         parent: str | None = None, attrs: Mapping[str, Any] | None = None,
         start_ns: int | None = None, duration_ns: int = 1_000_000, status: int = 0,
         status_message: str = "", kind: int = 1, events: Iterable[dict[str, Any]] = (),
         raw_ids: tuple[bytes, bytes] | None = None) -> dict[str, Any]:
    """A span description for ``protobuf_request``. ``raw_ids`` overrides the ids with bytes
    (for invalid-id tests)."""
    start = NOW_NS if start_ns is None else start_ns
    return {
        "name": name, "trace_id": trace_id or new_trace_id(), "span_id": span_id or new_span_id(),
        "parent": parent, "attrs": dict(attrs or {}), "start": start, "end": start + duration_ns,
        "status": status, "status_message": status_message, "kind": kind,
        "events": list(events), "raw_ids": raw_ids,
    }


class Pairs(tuple):
    """A kvlist given as (key, value) pairs, which, unlike a dict, may repeat a key."""


def set_value(target: AnyValue, value: Any) -> None:
    """``value`` as an AnyValue; None leaves it without a value (what OTLP calls empty)."""
    if value is None:
        return
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, Pairs):
        target.kvlist_value.SetInParent()
        for key, item in value:
            set_value(target.kvlist_value.values.add(key=key).value, item)
    elif isinstance(value, (list, tuple)):
        target.array_value.SetInParent()
        for item in value:
            set_value(target.array_value.values.add(), item)
    elif isinstance(value, dict):
        target.kvlist_value.SetInParent()
        for key, item in value.items():
            kv = target.kvlist_value.values.add()
            kv.key = key
            set_value(kv.value, item)
    else:
        raise TypeError(value)


def _set_attrs(container: Any, attrs: Mapping[str, Any]) -> None:
    for key, value in attrs.items():
        kv = container.add()
        kv.key = key
        set_value(kv.value, value)


def protobuf_request(spans: Iterable[dict[str, Any]], service: str = "test-agent",
                     scope: str = "tests") -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    _set_attrs(resource_spans.resource.attributes, {"service.name": service})
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = scope
    scope_spans.scope.version = "0.1"
    for spec in spans:
        out = scope_spans.spans.add()
        if spec["raw_ids"] is not None:
            out.trace_id, out.span_id = spec["raw_ids"]
        else:
            out.trace_id = bytes.fromhex(spec["trace_id"])
            out.span_id = bytes.fromhex(spec["span_id"])
        if spec["parent"]:
            out.parent_span_id = bytes.fromhex(spec["parent"])
        out.name = spec["name"]
        out.kind = spec["kind"]
        out.start_time_unix_nano = spec["start"]
        out.end_time_unix_nano = spec["end"]
        out.status.code = spec["status"]
        out.status.message = spec["status_message"]
        _set_attrs(out.attributes, spec["attrs"])
        for event in spec["events"]:
            ev = out.events.add()
            ev.name = event["name"]
            ev.time_unix_nano = event.get("time_ns", spec["start"])
            _set_attrs(ev.attributes, event.get("attributes", {}))
    return request


def protobuf_body(spans: Iterable[dict[str, Any]], **kwargs: Any) -> bytes:
    return protobuf_request(spans, **kwargs).SerializeToString()


def json_request(spans: Iterable[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """The OTLP JSON mapping of ``protobuf_request``: hex ids, int64 as strings, camelCase,
    enums as numbers."""
    as_dict = MessageToDict(protobuf_request(spans, **kwargs), use_integers_for_enums=True)
    return _hex_ids(as_dict)


def _hex_ids(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId")
                    else _hex_ids(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


# ---- protobuf by hand (any shape, any depth: what the protobuf library refuses to write) ----

def varint(n: int) -> bytes:
    """``n`` as a protobuf base-128 varint."""
    out = b""
    while True:
        out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return out


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return bytes([number << 3 | 2]) + varint(len(payload)) + payload
