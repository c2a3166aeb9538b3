"""Span frame → OTLP: the inverse of the decoder in ``otlp.py``.

``encode_request`` builds an OTLP JSON ``ExportTraceServiceRequest`` (the JSON
mapping of the OTLP spec: hex ids, 64-bit integers as strings, camelCase names,
enums as numbers, attributes as typed ``AnyValue``), grouped into
resourceSpans → scopeSpans → spans. ``request_to_protobuf`` turns that same dict
into protobuf bytes, so both encodings come from one place.

Attribute types come back from the frame's ``attributes`` JSON column: JSON keeps
strings, booleans, integers (``1``) and doubles (``1.0``) apart, lists become
``arrayValue``, objects ``kvlistValue``. Non-finite doubles are written the
proto3-JSON way (``"NaN"``, ``"Infinity"``, ``"-Infinity"``).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import polars as pl
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from ..ingest.frame_builder import _exception_message

STATUS_CODES = {"unset": 0, "ok": 1, "error": 2}
OTEL_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
# The frame's otel_kind as the decoder writes it ("server") or as the OTLP enum name
# ("SPAN_KIND_SERVER"), each mapped to the OTLP enum number.
SPAN_KINDS = {
    **{name: number for number, name in enumerate(OTEL_KINDS)},
    **{f"SPAN_KIND_{name.upper()}": number for number, name in enumerate(OTEL_KINDS)},
}


class OTLPEncodeError(ValueError):
    """A span cannot be written as OTLP; the message names the span and field."""


def encode_request(spans: pl.DataFrame) -> dict[str, Any]:
    """The spans as an OTLP JSON ``ExportTraceServiceRequest`` dict.

    Spans sharing a resource share one ``resourceSpans`` entry, and within it spans
    sharing an instrumentation scope share one ``scopeSpans`` entry (first-seen order).
    """
    resources: dict[str, dict[tuple[str | None, str | None], list[dict[str, Any]]]] = {}
    for row in spans.iter_rows(named=True):
        scopes = resources.setdefault(row["resource"] or "{}", {})
        scopes.setdefault((row["scope_name"], row["scope_version"]), []).append(encode_span(row))
    resource_spans = []
    for resource_json, scopes in resources.items():
        scope_spans = []
        for (scope_name, scope_version), encoded in scopes.items():
            scope: dict[str, Any] = {}
            if scope_name:
                scope["name"] = scope_name
            if scope_version:
                scope["version"] = scope_version
            scope_spans.append({"scope": scope, "spans": encoded})
        resource = {"attributes": key_values(_load_json(resource_json, "resource", None))}
        resource_spans.append({"resource": resource, "scopeSpans": scope_spans})
    return {"resourceSpans": resource_spans}


def encode_span(row: Mapping[str, Any]) -> dict[str, Any]:
    """One span-frame row as an OTLP JSON ``Span``."""
    span_id = row["span_id"]
    events = _load_json(row["events"], "events", span_id) or []
    span: dict[str, Any] = {"traceId": row["trace_id"], "spanId": span_id}
    if row["trace_state"]:
        span["traceState"] = row["trace_state"]
    if row["parent_span_id"]:
        span["parentSpanId"] = row["parent_span_id"]
    span["name"] = row["name"]
    otel_kind = row["otel_kind"] or "unspecified"
    if otel_kind not in SPAN_KINDS:
        raise OTLPEncodeError(f"span {span_id}: otel_kind {otel_kind!r} is not an OTLP span kind")
    span["kind"] = SPAN_KINDS[otel_kind]
    span["startTimeUnixNano"] = str(row["start_ns"])
    if row["end_ns"] is not None:
        span["endTimeUnixNano"] = str(row["end_ns"])
    span["attributes"] = key_values(_load_json(row["attributes"], "attributes", span_id))
    if events:
        span["events"] = [_encode_event(event) for event in events]
    links = _load_json(row["links"], "links", span_id) or []
    if links:
        span["links"] = [_encode_link(link) for link in links]
    status: dict[str, Any] = {}
    code = STATUS_CODES[str(row["status"])]
    if code:
        status["code"] = code
    message = row["status_message"]
    # The frame fills status_message from the first exception event when the span had
    # none; writing it back would add a message the original span never carried.
    if message and message != _exception_message(events):
        status["message"] = message
    span["status"] = status
    return span


def _encode_event(event: Mapping[str, Any]) -> dict[str, Any]:
    encoded: dict[str, Any] = {"timeUnixNano": str(event.get("time_ns") or 0),
                               "name": event.get("name") or ""}
    attributes = event.get("attributes") or {}
    if attributes:
        encoded["attributes"] = key_values(attributes)
    return encoded


def _encode_link(link: Mapping[str, Any]) -> dict[str, Any]:
    encoded: dict[str, Any] = {"traceId": link["trace_id"], "spanId": link["span_id"]}
    if link.get("trace_state"):
        encoded["traceState"] = link["trace_state"]
    attributes = link.get("attributes") or {}
    if attributes:
        encoded["attributes"] = key_values(attributes)
    return encoded


def key_values(attributes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """A mapping as an OTLP ``KeyValue`` list."""
    return [{"key": key, "value": any_value(value)} for key, value in (attributes or {}).items()]


def any_value(value: Any) -> dict[str, Any]:
    """A JSON-decoded attribute value as a typed OTLP ``AnyValue``."""
    if isinstance(value, str):
        return {"stringValue": value}
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isnan(value):
            return {"doubleValue": "NaN"}
        if math.isinf(value):
            return {"doubleValue": "Infinity" if value > 0 else "-Infinity"}
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": key_values(value)}}
    if isinstance(value, (bytes, bytearray)):
        return {"bytesValue": base64.b64encode(bytes(value)).decode("ascii")}
    raise OTLPEncodeError(f"attribute value of type {type(value).__name__} has no OTLP form")


def _load_json(text: str | None, column: str, span_id: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:  # NaN literals and integers beyond 64 bits, which orjson refuses
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"span {span_id}" if span_id else "resource"
        raise OTLPEncodeError(f"{where}: column {column!r} is not valid JSON: {exc}") from None


def iter_spans(request: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every ``Span`` dict of an OTLP JSON request (mutable, in place)."""
    for resource_spans in request.get("resourceSpans") or ():
        for scope_spans in resource_spans.get("scopeSpans") or ():
            yield from scope_spans.get("spans") or ()


def request_to_protobuf(request: Mapping[str, Any]) -> bytes:
    """An OTLP JSON request dict as protobuf ``ExportTraceServiceRequest`` bytes.

    Built field by field (hex ids to bytes, decimal strings to integers) rather than
    through ``json_format``, which is an order of magnitude slower on large snapshots.
    """
    message = ExportTraceServiceRequest()
    try:
        for resource_spans in request.get("resourceSpans") or ():
            target = message.resource_spans.add()
            resource = resource_spans.get("resource") or {}
            _set_key_values(target.resource.attributes, resource.get("attributes"))
            target.resource.dropped_attributes_count = int(
                resource.get("droppedAttributesCount") or 0)
            target.schema_url = resource_spans.get("schemaUrl") or ""
            for scope_spans in resource_spans.get("scopeSpans") or ():
                scope_target = target.scope_spans.add()
                scope = scope_spans.get("scope") or {}
                scope_target.scope.name = scope.get("name") or ""
                scope_target.scope.version = scope.get("version") or ""
                _set_key_values(scope_target.scope.attributes, scope.get("attributes"))
                scope_target.schema_url = scope_spans.get("schemaUrl") or ""
                for span in scope_spans.get("spans") or ():
                    _set_span(scope_target.spans.add(), span)
    except (KeyError, TypeError, ValueError) as exc:
        raise OTLPEncodeError(f"not an OTLP ExportTraceServiceRequest: {exc!r}") from None
    return message.SerializeToString()


def _set_span(target: Any, span: Mapping[str, Any]) -> None:
    target.trace_id = _id_bytes(span, "traceId")
    target.span_id = _id_bytes(span, "spanId")
    target.parent_span_id = _id_bytes(span, "parentSpanId")
    target.trace_state = span.get("traceState") or ""
    target.flags = int(span.get("flags") or 0)
    target.name = span.get("name") or ""
    target.kind = int(span.get("kind") or 0)
    target.start_time_unix_nano = int(span.get("startTimeUnixNano") or 0)
    target.end_time_unix_nano = int(span.get("endTimeUnixNano") or 0)
    _set_key_values(target.attributes, span.get("attributes"))
    target.dropped_attributes_count = int(span.get("droppedAttributesCount") or 0)
    for event in span.get("events") or ():
        event_target = target.events.add()
        event_target.time_unix_nano = int(event.get("timeUnixNano") or 0)
        event_target.name = event.get("name") or ""
        _set_key_values(event_target.attributes, event.get("attributes"))
        event_target.dropped_attributes_count = int(event.get("droppedAttributesCount") or 0)
    target.dropped_events_count = int(span.get("droppedEventsCount") or 0)
    for link in span.get("links") or ():
        link_target = target.links.add()
        link_target.trace_id = _id_bytes(link, "traceId")
        link_target.span_id = _id_bytes(link, "spanId")
        link_target.trace_state = link.get("traceState") or ""
        link_target.flags = int(link.get("flags") or 0)
        _set_key_values(link_target.attributes, link.get("attributes"))
        link_target.dropped_attributes_count = int(link.get("droppedAttributesCount") or 0)
    target.dropped_links_count = int(span.get("droppedLinksCount") or 0)
    status = span.get("status") or {}
    target.status.code = int(status.get("code") or 0)
    target.status.message = status.get("message") or ""


def _id_bytes(item: Mapping[str, Any], key: str) -> bytes:
    value = item.get(key)
    if not value:
        return b""
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise OTLPEncodeError(f"{key} {value!r} is not hex") from None


def _set_key_values(target: Any, items: Any) -> None:
    for item in items or ():
        key_value = target.add()
        key_value.key = item["key"]
        _set_any_value(key_value.value, item.get("value") or {})


def _set_any_value(target: Any, value: Mapping[str, Any]) -> None:
    if "stringValue" in value:
        target.string_value = value["stringValue"]
    elif "intValue" in value:
        target.int_value = int(value["intValue"])
    elif "doubleValue" in value:
        target.double_value = float(value["doubleValue"])  # also "NaN", "Infinity"
    elif "boolValue" in value:
        target.bool_value = bool(value["boolValue"])
    elif "arrayValue" in value:
        array = target.array_value
        array.SetInParent()
        for item in (value["arrayValue"] or {}).get("values") or ():
            _set_any_value(array.values.add(), item)
    elif "kvlistValue" in value:
        target.kvlist_value.SetInParent()
        _set_key_values(target.kvlist_value.values, (value["kvlistValue"] or {}).get("values"))
    elif "bytesValue" in value:
        target.bytes_value = base64.b64decode(value["bytesValue"])
