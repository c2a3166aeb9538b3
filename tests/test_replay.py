"""Replay: a snapshot re-sent over OTLP/HTTP (protobuf and JSON) to a real collector,
with fresh ids and shifted times, in batches, and the errors a user meets."""

from __future__ import annotations

import json
import math
import socket
import time
from pathlib import Path

import polars as pl
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from halo_nb.ingest.otlp import decode_json, decode_protobuf
from halo_nb.ingest.server import Collector
from halo_nb.interchange.otlp_encode import any_value, encode_request, request_to_protobuf
from halo_nb.interchange.replay import ReplayError, replay, split_request, traces_url
from halo_nb.interchange.snapshot import SnapshotChecksumError, checksum, export_snapshot
from halo_nb.schema import SPAN_COLUMNS
from halo_nb.storage.store import SpanStore

COMPARED = [c for c in SPAN_COLUMNS if c != "origin"]


@pytest.fixture
def recorded(tmp_path: Path, send_agent_runs):
    """A snapshot of three agent runs recorded through a real exporter, and its spans."""
    store = SpanStore(None)
    with Collector(store, port=0) as collector:
        send_agent_runs(collector.url, [{}, {"fail_search": True}, {"extra_search": True}])
    path = export_snapshot(store, None, tmp_path / "runs.json")
    spans = store.spans()
    store.close()
    return path, spans


@pytest.fixture
def target():
    store = SpanStore(None)
    with Collector(store, port=0) as collector:
        yield collector, store
    store.close()


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("trace_id", "span_id").select(COMPARED)


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_replay_reproduces_the_spans(recorded, target, encoding):
    path, original = recorded
    collector, store = target
    result = replay(path, collector.url, encoding=encoding)
    assert (result.spans_sent, result.spans_rejected, result.requests) == (13, 0, 1)
    assert result.traces_sent == 3 and result.shift_ns == 0
    assert result.trace_ids == {t: t for t in original["trace_id"].unique()}
    assert result.endpoint == collector.traces_url
    assert _sorted(store.spans()).equals(_sorted(original))
    assert store.spans()["origin"].null_count() == 13


def test_fresh_ids_and_shifted_times_keep_the_shape(recorded, target):
    path, original = recorded
    collector, store = target
    shift = 3_600 * 10**9
    result = replay(path, collector.traces_url, encoding="json", fresh_ids=True, shift_ns=shift)
    replayed = store.spans()
    assert replayed.height == 13 and result.shift_ns == shift
    assert set(result.trace_ids) == set(original["trace_id"])
    assert set(result.trace_ids.values()) == set(replayed["trace_id"])
    assert not set(replayed["span_id"]) & set(original["span_id"])

    # Map every replayed span back to its original through the trace map and tree position.
    for old_trace, new_trace in result.trace_ids.items():
        before = original.filter(pl.col("trace_id") == old_trace).sort("start_ns")
        after = replayed.filter(pl.col("trace_id") == new_trace).sort("start_ns")
        span_map = dict(zip(before["span_id"], after["span_id"], strict=True))
        assert after["name"].to_list() == before["name"].to_list()
        assert after["parent_span_id"].to_list() == [
            span_map.get(p) if p else None for p in before["parent_span_id"]]
        assert (after["start_ns"] - before["start_ns"]).unique().to_list() == [shift]
        assert (after["end_ns"] - before["end_ns"]).unique().to_list() == [shift]
        for b, a in zip(before["events"], after["events"], strict=True):
            assert [e["time_ns"] + shift for e in json.loads(b)] == [
                e["time_ns"] for e in json.loads(a)]
        for column in ("attributes", "status", "status_message", "tool_result", "resource"):
            assert after[column].to_list() == before[column].to_list()


def test_a_replay_sits_beside_the_original(recorded, target):
    path, original = recorded
    collector, store = target
    store.append(original)
    # Without fresh ids the collector drops every span as a duplicate.
    replay(path, collector.url)
    assert len(store) == 13
    started = time.time_ns()
    result = replay(path, collector.url, fresh_ids=True, shift_to_now=True)
    assert len(store) == 26 and len(store.trace_ids()) == 6
    newest = store.spans().filter(pl.col("trace_id").is_in(list(result.trace_ids.values())))
    assert started <= newest["start_ns"].min() <= time.time_ns()
    assert result.shift_ns == newest["start_ns"].min() - original["start_ns"].min()


def test_large_snapshots_go_in_batches(recorded, target):
    path, original = recorded
    collector, store = target
    result = replay(path, collector.url, batch_size=4)
    assert result.requests == 4 and result.spans_sent == 13
    assert collector.counts.requests_accepted == 4
    assert _sorted(store.spans()).equals(_sorted(original))


def test_split_request_keeps_resources_and_scopes(recorded):
    path, original = recorded
    request = encode_request(original)
    for size in (1, 3, 5, 13, 100):
        chunks = list(split_request(request, size))
        counts = [sum(len(ss["spans"]) for rs in c["resourceSpans"] for ss in rs["scopeSpans"])
                  for c in chunks]
        assert sum(counts) == 13 and max(counts) <= size and len(chunks) == math.ceil(13 / size)
        frames = [decode_json(chunk).frame for chunk in chunks]
        assert _sorted(pl.concat(frames)).equals(_sorted(original))


def test_an_error_answer_carries_the_servers_message(recorded):
    path, _ = recorded
    # A body limit that lets the first one-span request through and stops a later one.
    payload = json.loads(path.read_text(encoding="utf-8"))["payload"]
    sizes = [len(request_to_protobuf(chunk)) for chunk in split_request(payload, 1)]
    limit = sizes[0]
    accepted = next(n for n, size in enumerate(sizes) if size > limit)
    store = SpanStore(None)
    with Collector(store, port=0, max_body_bytes=limit) as collector:
        with pytest.raises(ReplayError, match=rf"HTTP 413 .*exceeds the limit of {limit} bytes"):
            replay(path, collector.url)
        with pytest.raises(ReplayError, match=r"HTTP 413 .*exceeds the limit"):
            replay(path, collector.url, encoding="json")
        with pytest.raises(ReplayError, match=rf"{accepted} span\(s\) were accepted before"):
            replay(path, collector.url, batch_size=1)
    assert len(store) == accepted
    store.close()


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_spans_the_endpoint_rejects_are_counted(recorded, target, encoding):
    path, original = recorded
    collector, store = target
    envelope = json.loads(path.read_text(encoding="utf-8"))
    envelope["payload"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "abcd"
    envelope["checksum"] = checksum(envelope["payload"])
    path.write_text(json.dumps(envelope), encoding="utf-8")
    result = replay(path, collector.url, encoding=encoding)
    assert (result.spans_sent, result.spans_rejected) == (original.height - 1, 1)
    assert len(result.messages) == 1 and "spanId must be 8 bytes" in result.messages[0]
    assert len(store) == original.height - 1


def test_an_unreachable_endpoint_is_reported(recorded):
    path, _ = recorded
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ReplayError, match=f"cannot reach http://127.0.0.1:{port}/v1/traces"):
        replay(path, f"http://127.0.0.1:{port}", timeout=5)


def test_a_damaged_snapshot_sends_nothing(recorded, target):
    path, _ = recorded
    collector, store = target
    envelope = json.loads(path.read_text(encoding="utf-8"))
    envelope["payload"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] = "edited"
    path.write_text(json.dumps(envelope), encoding="utf-8")
    with pytest.raises(SnapshotChecksumError):
        replay(path, collector.url)
    assert collector.counts.requests_accepted + collector.counts.requests_rejected == 0


def test_options_are_checked(recorded):
    path, _ = recorded
    with pytest.raises(ValueError, match="encoding"):
        replay(path, "http://127.0.0.1:1", encoding="xml")
    with pytest.raises(ValueError, match="not both"):
        replay(path, "http://127.0.0.1:1", shift_to_now=True, shift_ns=5)
    with pytest.raises(ValueError, match="http\\(s\\) URL"):
        replay(path, "127.0.0.1:4318")


def test_endpoint_forms():
    assert traces_url("http://h:4318") == "http://h:4318/v1/traces"
    assert traces_url("http://h:4318/") == "http://h:4318/v1/traces"
    assert traces_url("https://h/otel/v1/traces") == "https://h/otel/v1/traces"
    assert traces_url("http://h/prefix?x=1") == "http://h/prefix/v1/traces?x=1"
    with pytest.raises(ValueError):
        traces_url("ftp://h/")


def test_protobuf_and_json_encodings_decode_to_the_same_frame(recorded):
    _, original = recorded
    request = encode_request(original)
    from_json = decode_json(json.dumps(request).encode()).frame
    from_protobuf = decode_protobuf(request_to_protobuf(request)).frame
    assert _sorted(from_json).equals(_sorted(original))
    assert _sorted(from_protobuf).equals(_sorted(original))


def test_any_value_types():
    assert any_value(True) == {"boolValue": True}
    assert any_value(7) == {"intValue": "7"}
    assert any_value(7.0) == {"doubleValue": 7.0}
    assert any_value(float("nan")) == {"doubleValue": "NaN"}
    assert any_value(float("-inf")) == {"doubleValue": "-Infinity"}
    assert any_value(None) == {}
    assert any_value({"a": [1, "b"]}) == {"kvlistValue": {"values": [
        {"key": "a", "value": {"arrayValue": {"values": [{"intValue": "1"},
                                                        {"stringValue": "b"}]}}}]}}
    assert any_value(b"\x00\x01") == {"bytesValue": "AAE="}
    request = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
        "name": "x", "startTimeUnixNano": "1", "endTimeUnixNano": "2",
        "attributes": [{"key": "n", "value": any_value(float("inf"))}]}]}]}]}
    message = ExportTraceServiceRequest.FromString(request_to_protobuf(request))
    span = message.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert span.attributes[0].value.double_value == float("inf")
