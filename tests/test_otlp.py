"""OTLP protobuf and JSON decoding into the span frame."""

from __future__ import annotations

import json

import polars as pl
import pytest
from otlp_factory import json_request, new_span_id, new_trace_id, protobuf_body, span

from halo_nb.ingest.otlp import (
    MAX_VALUE_DEPTH,
    OTLPDecodeError,
    decode_json,
    decode_protobuf,
    decode_request_dict,
)
from halo_nb.schema import SPAN_SCHEMA


def agent_trace() -> list[dict]:
    trace_id = new_trace_id()
    root = span("agent", trace_id=trace_id, attrs={
        "openinference.span.kind": "AGENT", "input.value": "find flights", "output.value": "none",
    }, status=1)
    llm = span("chat", trace_id=trace_id, parent=root["span_id"], kind=3, attrs={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20,
        "gen_ai.response.finish_reasons": ["length"], "gen_ai.request.temperature": 0.5,
    })
    tool = span("search", trace_id=trace_id, parent=root["span_id"], attrs={
        "openinference.span.kind": "TOOL", "tool.name": "search_flights",
        "input.value": '{"to": "LIS"}', "output.value": "[]",
    })
    failing = span("http", trace_id=trace_id, parent=tool["span_id"], status=2, attrs={
        "traceloop.span.kind": "task", "retries": [1, 2], "meta": {"a": 1, "b": [True]},
        "blob": b"\x00\x01",
    }, events=[{"name": "exception", "attributes": {
        "exception.type": "TimeoutError", "exception.message": "upstream timed out"}}])
    return [root, llm, tool, failing]


def test_protobuf_fields_are_normalised() -> None:
    spans = agent_trace()
    result = decode_protobuf(protobuf_body(spans, service="booking"))
    frame = result.frame
    assert result.rejected == 0 and result.errors == []
    assert frame.schema == pl.Schema(SPAN_SCHEMA)
    rows = {r["name"]: r for r in frame.to_dicts()}
    root, llm, tool, failing = (rows[n] for n in ("agent", "chat", "search", "http"))
    assert root["parent_span_id"] is None and root["kind"] == "agent" and root["status"] == "ok"
    assert root["input"] == "find flights" and root["output"] == "none"
    assert llm["parent_span_id"] == spans[0]["span_id"] == root["span_id"]
    assert (llm["kind"], llm["model"], llm["otel_kind"]) == ("llm", "gpt-4o", "client")
    assert (llm["tokens_in"], llm["tokens_out"], llm["tokens_total"]) == (100, 20, 120)
    assert llm["finish_reason"] == "length"
    assert (tool["kind"], tool["tool_name"], tool["tool_args"], tool["tool_result"]) == (
        "tool", "search_flights", '{"to": "LIS"}', "[]")
    assert failing["kind"] == "chain" and failing["status"] == "error"
    assert failing["status_message"] == "upstream timed out"
    assert json.loads(failing["attributes"]) == {
        "traceloop.span.kind": "task", "retries": [1, 2], "meta": {"a": 1, "b": [True]},
        "blob": "AAE="}
    assert json.loads(failing["events"])[0]["attributes"]["exception.type"] == "TimeoutError"
    assert {r["service"] for r in rows.values()} == {"booking"}
    assert json.loads(root["resource"]) == {"service.name": "booking"}
    assert root["scope_name"] == "tests" and root["duration_ms"] == 1.0
    assert json.loads(llm["attributes"])["gen_ai.request.temperature"] == 0.5


def test_json_and_protobuf_give_the_same_frame() -> None:
    spans = agent_trace()
    from_pb = decode_protobuf(protobuf_body(spans)).frame
    request = json_request(spans)
    from_bytes = decode_json(json.dumps(request).encode())
    assert from_bytes.rejected == 0
    assert from_bytes.frame.equals(from_pb)
    assert decode_request_dict(request).frame.equals(from_pb)
    assert decode_json(json.dumps(request)).frame.equals(from_pb)


def test_json_accepts_snake_case_numbers_enum_names_and_base64_ids() -> None:
    trace_id, span_id = new_trace_id(), new_span_id()
    import base64

    body = {"resource_spans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"string_value": "snake"}}]},
        "scope_spans": [{"scope": {"name": "s"}, "spans": [
            {"trace_id": trace_id, "span_id": span_id, "name": "a",
             "start_time_unix_nano": 1_000, "end_time_unix_nano": "3000000",
             "kind": "SPAN_KIND_SERVER", "status": {"code": "STATUS_CODE_ERROR"},
             "attributes": [{"key": "n", "value": {"int_value": "7"}},
                            {"key": "d", "value": {"doubleValue": "Infinity"}}]},
            {"traceId": base64.b64encode(bytes.fromhex(trace_id)).decode(),
             "spanId": base64.b64encode(bytes.fromhex(new_span_id())).decode(),
             "parentSpanId": span_id, "name": "b", "startTimeUnixNano": "2000"},
        ]}]}]}
    result = decode_json(body, origin="import.json")
    assert result.rejected == 0, result.errors
    a, b = result.frame.sort("name").to_dicts()
    assert (a["service"], a["otel_kind"], a["status"], a["end_ns"]) == ("snake", "server",
                                                                      "error", 3_000_000)
    assert json.loads(a["attributes"])["n"] == 7
    assert b["trace_id"] == trace_id and b["parent_span_id"] == span_id and b["end_ns"] is None
    assert set(result.frame["origin"]) == {"import.json"}


@pytest.mark.parametrize(("raw_ids", "message"), [
    ((b"\x01" * 15, b"\x01" * 8), "traceId must be 16 bytes, got 15"),
    ((b"\x00" * 16, b"\x01" * 8), "traceId must not be all zeros"),
    ((b"\x01" * 16, b""), "spanId must be 8 bytes, got 0"),
    ((b"\x01" * 16, b"\x00" * 8), "spanId must not be all zeros"),
])
def test_protobuf_bad_ids_are_rejected_per_span(raw_ids: tuple[bytes, bytes],
                                                message: str) -> None:
    good = span("good")
    result = decode_protobuf(protobuf_body([good, span("bad", raw_ids=raw_ids)]))
    assert result.frame["name"].to_list() == ["good"]
    assert result.rejected == 1
    assert result.errors == [f"resourceSpans[0].scopeSpans[0].spans[1]: {message}"]


def test_json_bad_spans_are_rejected_with_reasons() -> None:
    request = json_request([span("good"), span("x"), span("y"), span("z"), span("w")])
    bad = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
    bad[1]["traceId"] = "zz" * 16
    bad[2]["spanId"] = "abc"
    bad[3]["startTimeUnixNano"] = "yesterday"
    bad[4]["attributes"] = [{"key": "k", "value": {"intValue": "seven"}}]
    result = decode_json(request)
    assert result.frame["name"].to_list() == ["good"]
    assert result.rejected == 4
    assert "spans[1]: traceId 'zz" in result.errors[0] and "is not hex" in result.errors[0]
    assert "spans[2]: spanId must be 8 bytes (16 hex digits), got 3 characters" in result.errors[1]
    assert "spans[3]: startTimeUnixNano 'yesterday' is not an integer" in result.errors[2]
    assert "spans[4]: attributes[0] (k): intValue 'seven' is not an integer" in result.errors[3]


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "body is not valid UTF-8 JSON"),
    (b"[1, 2]", "body must be a JSON object (ExportTraceServiceRequest), got a list"),
    (b'{"resourceSpans": {}}', "resourceSpans must be a list, got an object"),
    (b'{"resourceSpans": [{"scopeSpans": 3}]}', "resourceSpans[0].scopeSpans must be a list"),
    (b"\xff\xfe", "body is not valid UTF-8 JSON"),
])
def test_undecodable_json_raises_with_the_problem_named(body: bytes, message: str) -> None:
    with pytest.raises(OTLPDecodeError) as info:
        decode_json(body)
    assert message in str(info.value)


def test_undecodable_protobuf_raises() -> None:
    with pytest.raises(OTLPDecodeError, match="not a valid protobuf ExportTraceServiceRequest"):
        decode_protobuf(b"\x0a\xff\xff\xff\xff\x0f garbage")


def test_empty_requests_decode_to_empty_frames() -> None:
    assert decode_protobuf(b"").frame.height == 0
    result = decode_json(b"{}")
    assert result.frame.height == 0 and result.frame.schema == pl.Schema(SPAN_SCHEMA)


def test_json_links_are_kept_and_bad_links_reject_their_span() -> None:
    trace_id, span_id = new_trace_id(), new_span_id()
    request = json_request([span("linked"), span("bad link")])
    spans = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["links"] = [{"traceId": trace_id, "spanId": span_id, "traceState": "v=1",
                          "attributes": [{"key": "n", "value": {"intValue": "3"}}]}]
    spans[1]["links"] = [{"traceId": trace_id, "spanId": "00"}]
    result = decode_json(json.dumps(request).encode())
    assert json.loads(result.frame["links"][0]) == [
        {"trace_id": trace_id, "span_id": span_id, "trace_state": "v=1", "attributes": {"n": 3}}]
    assert result.rejected == 1
    assert result.errors[0].startswith("resourceSpans[0].scopeSpans[0].spans[1]: links[0].spanId")


def _one_attribute(value: object) -> dict:
    request = json_request([span("typed")])
    request["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"] = [
        {"key": "k", "value": value}]
    return request


@pytest.mark.parametrize(("value", "stored"), [
    ({"boolValue": False}, False),
    ({"intValue": "-12"}, -12),
    ({"intValue": 7}, 7),
    ({"intValue": 3.0}, 3),
    ({"intValue": "99999999999999999999"}, 99999999999999999999),
    ({"doubleValue": 2}, 2.0),
    ({"doubleValue": "1.5"}, 1.5),
    ({"stringValue": ""}, ""),
    ({"bytesValue": "AAE="}, "AAE="),
    ({"bytesValue": "-_8="}, "-_8="),
    ({"arrayValue": {}}, []),
    ({"kvlistValue": {"values": [{"key": "a", "value": {"boolValue": True}}]}}, {"a": True}),
])
def test_json_values_of_their_otlp_type_are_stored_as_sent(value: dict, stored: object) -> None:
    result = decode_json(_one_attribute(value))
    assert result.rejected == 0
    assert json.loads(result.frame["attributes"][0]) == {"k": stored}


@pytest.mark.parametrize(("value", "message"), [
    ({"boolValue": "false"}, "boolValue must be true or false, got a string 'false'"),
    ({"boolValue": 0}, "boolValue must be true or false, got a number 0"),
    ({"intValue": 1.9}, "intValue 1.9 is not an integer"),
    ({"intValue": "1.9"}, "intValue '1.9' is not an integer"),
    ({"intValue": True}, "intValue True is not an integer"),
    ({"intValue": " 5"}, "intValue ' 5' is not an integer"),
    ({"intValue": "9" * 5000}, "intValue '" + "9" * 56 + "... is not an integer"),
    ({"doubleValue": False}, "doubleValue False is not a number"),
    ({"doubleValue": "many"}, "doubleValue 'many' is not a number"),
    ({"doubleValue": 10**400}, "is not a number"),
    ({"stringValue": 5}, "stringValue must be a string, got a number"),
    ({"stringValue": None}, "stringValue must be a string, got null"),
    ({"bytesValue": "not base64!"}, "bytesValue must be base64 text"),
    ({"bytesValue": [1]}, "bytesValue must be base64 text, got a list"),
    ({"arrayValue": [1, 2]}, "arrayValue must be an object, got a list"),
    ({"arrayValue": {"values": 5}}, "arrayValue.values must be a list, got a number"),
    ({"kvlistValue": "x"}, "kvlistValue must be an object, got a string"),
])
def test_json_values_of_another_type_reject_their_span_only(value: dict, message: str) -> None:
    request = _one_attribute(value)
    request["resourceSpans"] += json_request([span("sound")])["resourceSpans"]
    result = decode_json(request)  # as parsed JSON: orjson refuses 10**400 in a body
    assert result.frame["name"].to_list() == ["sound"]
    assert result.rejected == 1
    assert result.errors[0].startswith("resourceSpans[0].scopeSpans[0].spans[0]: attributes[0] "
                                       "(k): ")
    assert message in result.errors[0]
    assert len(result.errors[0]) < 300


def test_json_values_nested_past_the_limit_reject_their_span() -> None:
    value: dict = {"stringValue": "leaf"}
    for _ in range(MAX_VALUE_DEPTH):
        value = {"arrayValue": {"values": [value]}}
    assert decode_json(_one_attribute(value)).rejected == 0
    result = decode_json(_one_attribute({"kvlistValue": {"values": [{"key": "x",
                                                                      "value": value}]}}))
    assert result.rejected == 1
    assert f"value nested deeper than {MAX_VALUE_DEPTH} levels" in result.errors[0]


def test_json_nested_past_what_any_parser_reads_is_an_error_not_a_crash() -> None:
    for body in (b"[" * 10_000 + b"]" * 10_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000):
        with pytest.raises(OTLPDecodeError, match="not valid UTF-8 JSON"):
            decode_json(body)
    deep: dict = {"stringValue": "leaf"}
    for _ in range(10_000):  # a parsed dict, as snapshot import hands over, past any parser
        deep = {"kvlistValue": {"values": [{"key": "k", "value": deep}]}}
    result = decode_json(_one_attribute(deep))
    assert result.rejected == 1 and "nested deeper than" in result.errors[0]


def test_json_spans_over_the_attribute_cap_are_rejected_with_the_count() -> None:
    request = json_request([span("small", attrs={f"a{n}": n for n in range(3)}),
                            span("large", attrs={f"a{n}": n for n in range(9)})])
    result = decode_json(request, max_attributes=5)
    assert result.frame["name"].to_list() == ["small"]
    assert result.errors == ["resourceSpans[0].scopeSpans[0].spans[1]: 9 attributes exceed the "
                             "limit of 5 per span (max_attributes_per_span); the span was not "
                             "stored"]
    assert decode_json(request).rejected == 0
