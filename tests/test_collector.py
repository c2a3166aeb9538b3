"""The OTLP/HTTP collector: status codes and bodies per the spec, bad input never losing
stored spans, concurrency, lifecycle."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otlp_factory import json_request, protobuf_body, span

import halo_nb
from halo_nb.ingest.server import Collector, CollectorError
from halo_nb.ingest.span_batch import SpanBatch
from halo_nb.storage.store import SpanStore

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def post(collector: Collector, body: bytes, content_type: str | None = PROTOBUF,
         path: str = "/v1/traces", method: str = "POST",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=30)
    try:
        all_headers = dict(headers or {})
        if content_type is not None:
            all_headers["Content-Type"] = content_type
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def status_message(content_type: str, body: bytes) -> str:
    if content_type.startswith(JSON):
        return json.loads(body)["message"]
    return Status.FromString(body).message


@pytest.fixture
def seeded(collector: Collector, memory_store: SpanStore) -> Iterator[Collector]:
    """The collector with 3 spans stored; afterwards, they must all still be there and the
    collector must still accept a good request."""
    code, _, _ = post(collector, protobuf_body([span("a"), span("b"), span("c")]))
    assert code == 200
    before = memory_store.spans()
    yield collector
    assert collector.running
    after = memory_store.spans()
    assert after.height >= 3 and before.join(after, on=["trace_id", "span_id"]).height == 3
    assert post(collector, protobuf_body([span("after")]))[0] == 200


def test_protobuf_and_json_requests_are_accepted(collector: Collector,
                                                 memory_store: SpanStore) -> None:
    code, headers, body = post(collector, protobuf_body([span("pb")]))
    assert (code, headers["Content-Type"]) == (200, PROTOBUF)
    assert ExportTraceServiceResponse.FromString(body) == ExportTraceServiceResponse()
    as_json = json.dumps(json_request([span("js")])).encode()
    code, headers, body = post(collector, as_json, "application/json; charset=utf-8")
    assert (code, headers["Content-Type"], json.loads(body)) == (200, JSON, {})
    code, _, _ = post(collector, gzip.compress(protobuf_body([span("gz")])),
                      headers={"Content-Encoding": "gzip"})
    assert code == 200
    assert sorted(memory_store.spans()["name"]) == ["gz", "js", "pb"]
    counts = collector.counts
    assert (counts.requests_accepted, counts.spans_accepted, counts.requests_rejected) == (3, 3, 0)


def test_bad_ids_get_a_partial_success(seeded: Collector, memory_store: SpanStore) -> None:
    body = protobuf_body([span("good"), span("bad", raw_ids=(b"\x01" * 4, b"\x02" * 8))])
    code, headers, raw = post(seeded, body)
    assert (code, headers["Content-Type"]) == (200, PROTOBUF)
    partial = ExportTraceServiceResponse.FromString(raw).partial_success
    assert partial.rejected_spans == 1
    assert partial.error_message == (
        "resourceSpans[0].scopeSpans[0].spans[1]: traceId must be 16 bytes, got 4")
    request = json_request([span("good2"), span("bad2")])
    request["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["spanId"] = "00" * 8
    code, headers, raw = post(seeded, json.dumps(request).encode(), JSON)
    assert (code, json.loads(raw)) == (200, {"partialSuccess": {
        "rejectedSpans": "1",
        "errorMessage": "resourceSpans[0].scopeSpans[0].spans[1]: spanId must not be all zeros"}})
    assert {"good", "good2"} <= set(memory_store.spans()["name"])
    assert seeded.counts.spans_rejected == 2


@pytest.mark.parametrize(("body", "content_type", "headers", "code", "message"), [
    (b"\x0a\xff\xff\xff\xff\x0f", PROTOBUF, {}, 400,
     "body is not a valid protobuf ExportTraceServiceRequest"),
    (b'{"resourceSpans": [', JSON, {}, 400, "body is not valid UTF-8 JSON"),
    (b'{"resourceSpans": 5}', JSON, {}, 400, "resourceSpans must be a list, got a number"),
    (b"not gzip", PROTOBUF, {"Content-Encoding": "gzip"}, 400, "body is not valid gzip"),
    (gzip.compress(protobuf_body([span("cut")]))[:-8], PROTOBUF, {"Content-Encoding": "gzip"}, 400,
     "body is not valid gzip"),
    (b"{}", "text/plain", {}, 415, "unsupported Content-Type 'text/plain'"),
    (b"{}", None, {}, 415, "unsupported Content-Type '(none)'"),
    (b"{}", JSON, {"Content-Encoding": "br"}, 415, "unsupported Content-Encoding 'br'"),
])
def test_bad_requests_get_their_status_and_message(
        seeded: Collector, body: bytes, content_type: str | None, headers: dict[str, str],
        code: int, message: str) -> None:
    got, response_headers, raw = post(seeded, body, content_type, headers=headers)
    assert got == code
    response_type = JSON if content_type == JSON else PROTOBUF
    assert response_headers["Content-Type"] == response_type
    assert message in status_message(response_type, raw)
    assert seeded.counts.requests_rejected == 1


def test_wrong_path_and_method(seeded: Collector) -> None:
    code, headers, raw = post(seeded, b"{}", JSON, path="/v1/metrics")
    assert code == 404 and "no such path '/v1/metrics'" in status_message(JSON, raw)
    code, headers, raw = post(seeded, b"", None, method="GET")
    assert code == 405 and headers["Allow"] == "POST"
    assert "method GET not allowed on /v1/traces" in status_message(PROTOBUF, raw)
    code, _, _ = post(seeded, b"", None, path="/", method="GET")
    assert code == 404


@pytest.fixture
def small_collector(memory_store: SpanStore) -> Iterator[Collector]:
    running = Collector(memory_store, port=0, max_body_bytes=64 * 1024).start()
    yield running
    running.stop()


def test_oversized_body_is_413(small_collector: Collector, memory_store: SpanStore) -> None:
    assert post(small_collector, protobuf_body([span("kept")]))[0] == 200
    code, _, raw = post(small_collector, b"\0" * (64 * 1024 + 1))
    assert code == 413
    assert status_message(PROTOBUF, raw) == (
        "body of 65537 bytes exceeds the limit of 65536 bytes (max_body_bytes)")
    big = protobuf_body([span("x", attrs={"input.value": "y" * 70_000})])
    code, _, raw = post(small_collector, gzip.compress(big), headers={"Content-Encoding": "gzip"})
    assert code == 413 and "decompressed body exceeds the limit of 65536 bytes" in (
        status_message(PROTOBUF, raw))
    assert memory_store.spans()["name"].to_list() == ["kept"]
    assert small_collector.running


def gzip_bomb(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    parts = [compressor.compress(zeros) for _ in range(size >> 20)]
    return b"".join(parts) + compressor.flush()


def test_gzip_bomb_is_413_without_inflating(memory_store: SpanStore) -> None:
    bomb = gzip_bomb(128 << 20)
    limited = Collector(memory_store, port=0, max_body_bytes=1 << 20).start()
    tracemalloc.start()
    try:
        code, _, raw = post(limited, bomb, headers={"Content-Encoding": "gzip"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        limited.stop()
    assert len(bomb) < 1 << 20
    assert code == 413 and "decompressed body exceeds the limit" in status_message(PROTOBUF, raw)
    assert peak < 16 << 20, f"decompressing the bomb took {peak >> 20} MiB"


def raw_request(collector: Collector, head: bytes, body: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", collector.port), timeout=30) as sock:
        sock.sendall(head + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data:
                header, _, rest = data.partition(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in header.split(b"\r\n")
                          if line.lower().startswith(b"content-length")]
                if length and len(rest) >= length[0]:
                    break
        return data


def test_chunked_bodies_and_missing_length(seeded: Collector, memory_store: SpanStore) -> None:
    body = protobuf_body([span("chunked")])
    chunked = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n"
                       for p in (body[:10], body[10:])) + b"0\r\n\r\n"
    reply = raw_request(seeded, b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                        b"application/x-protobuf\r\nTransfer-Encoding: chunked\r\n"
                        b"Connection: close\r\n\r\n", chunked)
    assert reply.startswith(b"HTTP/1.1 200")
    assert "chunked" in memory_store.spans()["name"].to_list()
    reply = raw_request(seeded, b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                        b"application/x-protobuf\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 411")


def test_eight_concurrent_exporters_lose_no_span(collector: Collector,
                                                 memory_store: SpanStore) -> None:
    per_exporter = 2500
    batches: list[list] = []
    for e in range(8):
        recorder = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": f"agent-{e}"}))
        provider.add_span_processor(SimpleSpanProcessor(recorder))
        tracer = provider.get_tracer("load")
        for t in range(per_exporter // 25):
            with tracer.start_as_current_span(f"run {t}", attributes={
                    "openinference.span.kind": "AGENT"}):
                for i in range(24):
                    with tracer.start_as_current_span(f"step {i}", attributes={
                            "llm.model_name": "m", "llm.token_count.prompt": i}):
                        pass
        batches.append(list(recorder.get_finished_spans()))
    results: list[SpanExportResult] = []

    def export(spans: list) -> None:
        exporter = OTLPSpanExporter(endpoint=collector.traces_url, timeout=60)
        for start in range(0, len(spans), 500):
            results.append(exporter.export(spans[start:start + 500]))
        exporter.shutdown()

    threads = [threading.Thread(target=export, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(SpanExportResult.SUCCESS) == len(results) == 40
    assert len(memory_store) == 20_000
    frame = memory_store.spans()
    assert frame.height == 20_000 and frame["service"].n_unique() == 8
    assert memory_store.traces().height == 800
    assert collector.counts.spans_accepted == 20_000


def test_port_in_use_names_the_port(memory_store: SpanStore) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(CollectorError, match=f"port {port} on 127.0.0.1 is already in use"):
            Collector(memory_store, port=port).start()


def test_stop_and_restart_keep_the_store(memory_store: SpanStore) -> None:
    first = Collector(memory_store, port=0).start()
    assert post(first, protobuf_body([span("one")]))[0] == 200
    port = first.port
    first.stop()
    assert not first.running
    with pytest.raises(OSError):
        post(first, protobuf_body([span("lost")]))
    second = Collector(memory_store, port=port).start()
    try:
        assert post(second, protobuf_body([span("two")]))[0] == 200
        assert sorted(memory_store.spans()["name"]) == ["one", "two"]
        assert second.url == f"http://127.0.0.1:{port}"
    finally:
        second.stop()


def test_serve_twice_returns_the_running_collector(halo_runtime) -> None:
    first = halo_nb.serve()
    assert halo_nb.serve() is first and first.running and first.port != 0
    code, _, _ = post(first, protobuf_body([span("via serve")]))
    assert code == 200 and halo_nb.spans()["name"].to_list() == ["via serve"]
    halo_nb.stop()
    assert not first.running


def test_spans_received_before_a_restart_are_served_after_it(halo_runtime) -> None:
    from halo_nb import runtime

    first = halo_nb.serve()
    assert post(first, protobuf_body([span("before restart")]))[0] == 200
    runtime.reset()  # what a kernel restart leaves behind: only the files
    halo_nb.configure(storage_path=halo_runtime, port=0)
    second = halo_nb.serve()
    assert halo_nb.spans()["name"].to_list() == ["before restart"]
    assert post(second, protobuf_body([span("after restart")]))[0] == 200
    assert sorted(halo_nb.spans()["name"]) == ["after restart", "before restart"]


def large_batch(prefix: str, count: int = 400) -> list[dict]:
    """Spans whose request body is over POOL_MIN_BYTES, so worker processes decode it when
    it is JSON (protobuf is decoded natively in the request thread)."""
    return [span(f"{prefix}{i}", attrs={"input.value": "x" * 300, "openinference.span.kind": "LLM",
                                        "llm.token_count.prompt": i}) for i in range(count)]


def large_json(spans: list[dict]) -> bytes:
    return json.dumps(json_request(spans)).encode()


def test_large_json_bodies_are_decoded_by_workers_with_the_same_answers(
        memory_store: SpanStore) -> None:
    from halo_nb.ingest.server import POOL_MIN_BYTES

    with Collector(memory_store, host="127.0.0.1", port=0, decode_workers=1) as collector:
        collector.start_decoders()
        good = large_json(large_batch("j"))
        assert len(good) >= POOL_MIN_BYTES
        assert post(collector, good, JSON)[0] == 200
        assert post(collector, protobuf_body(large_batch("p")))[0] == 200
        spans = memory_store.spans()
        assert spans.height == 800
        assert spans.filter(spans["name"] == "j7")["tokens_in"].to_list() == [7]
        assert set(spans["kind"]) == {"llm"}

        mixed = large_batch("m") + [span("bad", raw_ids=(b"\x01" * 4, b"\x02" * 8))]
        mixed_json = json_request(mixed)
        mixed_json["resourceSpans"][0]["scopeSpans"][0]["spans"][400]["traceId"] = "01" * 4
        code, _, raw = post(collector, json.dumps(mixed_json).encode(), JSON)
        assert code == 200
        assert json.loads(raw)["partialSuccess"] == {
            "rejectedSpans": "1",
            "errorMessage": "resourceSpans[0].scopeSpans[0].spans[400]: traceId must be 16 "
                            "bytes (32 hex digits), got 8 characters"}

        code, _, raw = post(collector, b"[" + b" " * POOL_MIN_BYTES + b"{", JSON)
        assert code == 400
        assert "not valid UTF-8 JSON" in status_message(JSON, raw)
        assert memory_store.spans().height == 1200

        worker = next(iter(collector._decoders._workers))
        worker.kill()
        worker.wait()
        assert post(collector, large_json(large_batch("after")), JSON)[0] == 200
        assert memory_store.spans().height == 1600
        assert collector.running


def test_worker_processes_apply_the_attribute_cap(memory_store: SpanStore) -> None:
    with Collector(memory_store, port=0, decode_workers=1,
                   max_attributes_per_span=3) as collector:
        collector.start_decoders()
        wide = span("wide", attrs={"input.value": "x" * 300, "a": 1, "b": 2, "c": 3})
        body = large_json(large_batch("w", 300) + [wide])
        code, _, raw = post(collector, body, JSON)
        assert code == 200 and collector._decoders is not None
        assert json.loads(raw)["partialSuccess"]["errorMessage"] == (
            "resourceSpans[0].scopeSpans[0].spans[300]: 4 attributes exceed the limit of 3 "
            "per span (max_attributes_per_span); the span was not stored")
        assert memory_store.spans().height == 300


def test_large_protobuf_left_to_the_reference_is_decoded_by_a_worker(
        memory_store: SpanStore) -> None:
    with Collector(memory_store, port=0, decode_workers=1) as collector:
        body = protobuf_body(large_batch("p") + [span("bad", raw_ids=(b"\x01" * 4, b"\x02" * 8))])
        code, _, raw = post(collector, body)
        assert collector._decoders is not None  # started by this protobuf body
        partial = ExportTraceServiceResponse.FromString(raw).partial_success
        assert (code, partial.rejected_spans) == (200, 1)
        assert partial.error_message == ("resourceSpans[0].scopeSpans[0].spans[400]: traceId "
                                         "must be 16 bytes, got 4")
        assert memory_store.spans().height == 400


def test_from_settings_carries_every_limit(memory_store: SpanStore) -> None:
    from halo_nb.config import Settings

    settings = Settings(port=0, max_body_bytes=1234, request_timeout_seconds=2.5,
                        max_attributes_per_span=7)
    collector = Collector.from_settings(memory_store, settings)
    assert (collector.max_body_bytes, collector.request_timeout_seconds,
            collector.max_attributes_per_span, collector.requested_port) == (1234, 2.5, 7, 0)


class _SlowStore(SpanStore):
    """A store whose appends take a while, so concurrent requests queue behind one."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__(None)
        self.calls = 0
        self.fail = fail
        self.first_entered = threading.Event()
        self.release_first = threading.Event()

    def append_batches(self, batches: list[SpanBatch]) -> int:
        self.calls += 1
        if self.calls == 1:
            self.first_entered.set()
            self.release_first.wait(10)
        if self.fail:
            raise RuntimeError("disk full")
        return super().append_batches(batches)


def _append_concurrently(store: _SlowStore, count: int) -> list[BaseException | None]:
    from halo_nb.group_commit import GroupCommit
    from halo_nb.ingest.otlp import decode_protobuf

    appender = GroupCommit(store.append_batches)  # as the collector appends (Collector._appender)
    batches = [decode_protobuf(protobuf_body([span(f"s{i}")])).span_batch() for i in range(count)]
    outcomes: list[BaseException | None] = [None] * count

    def run(i: int) -> None:
        try:
            appender.submit(batches[i])
        except BaseException as exc:  # recorded for the assertions
            outcomes[i] = exc

    first = threading.Thread(target=run, args=(0,))
    first.start()
    assert store.first_entered.wait(10)
    rest = [threading.Thread(target=run, args=(i,)) for i in range(1, count)]
    for thread in rest:
        thread.start()
    deadline = time.monotonic() + 10
    while len(appender._queue) < count - 1 and time.monotonic() < deadline:
        time.sleep(0.01)  # until all the others queue behind the first
    assert len(appender._queue) == count - 1
    store.release_first.set()
    for thread in [first, *rest]:
        thread.join(10)
    return outcomes


def test_concurrent_requests_are_appended_together_and_all_stored() -> None:
    store = _SlowStore()
    outcomes = _append_concurrently(store, 6)
    assert outcomes == [None] * 6
    assert sorted(store.spans()["name"]) == [f"s{i}" for i in range(6)]
    assert store.calls == 2  # the first request alone, then the five that queued behind it


def test_a_failed_group_append_fails_every_request_in_it() -> None:
    store = _SlowStore(fail=True)
    outcomes = _append_concurrently(store, 4)
    assert all(isinstance(o, RuntimeError) and str(o) == "disk full" for o in outcomes)
    assert store.calls == 2
