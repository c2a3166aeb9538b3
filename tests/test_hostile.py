"""Hostile input, one case at a time (issue 12): every request or file gets a clear status
or error at bounded cost, and the spans already stored stay exactly as they were.

The collector cases talk raw HTTP over a real socket to a collector with small limits;
the file cases use real FIFOs, directories, device nodes and sparse files, and the
command-line cases run ``halo`` as a subprocess. Tests that wait out a deadline or load
the machine are in the ``fault`` tier.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import random
import select
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from otlp_factory import field, json_request, protobuf_body, span, varint

from halo_nb.ingest.server import IDLE_GRACE_S, Collector
from halo_nb.interchange.snapshot import (
    SnapshotConflictError,
    SnapshotCorruptError,
    SnapshotFileError,
    export_snapshot,
    import_snapshot,
    read_snapshot,
)
from halo_nb.storage.store import SpanStore

LIMIT = 1 << 20
DEADLINE = 1.0
ALLOWANCE = 64 * 1024
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
HALO = [sys.executable, "-m", "halo_nb.cli"]


# ---- a collector holding three spans that must survive every case --------------------------


class Guarded:
    """A running collector and its store; ``stored`` is what it held before the case."""

    def __init__(self, collector: Collector, store: SpanStore) -> None:
        self.collector = collector
        self.store = store
        self.stored = store.spans()

    def exchange(self, data: bytes, *, wait: float = 10.0) -> tuple[int, bytes]:
        """Send raw bytes and end the stream, then read the answer (status, body) until the
        response is whole or the server closes."""
        with socket.create_connection(("127.0.0.1", self.collector.port), timeout=wait) as sock:
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            except OSError as exc:
                # The server answered and closed before taking it all (EPIPE, ECONNRESET, or
                # ENOTCONN from the shutdown): read the answer.
                if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                    raise
            return read_response(sock)

    def post(self, body: bytes, content_type: str = PROTOBUF, *,
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        lines = ["POST /v1/traces HTTP/1.1", f"Host: 127.0.0.1:{self.collector.port}",
                 f"Content-Type: {content_type}", f"Content-Length: {len(body)}",
                 "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        return self.exchange(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    status, _, body = read_answer(sock)
    return status, body


def read_answer(sock: socket.socket) -> tuple[int, bytes, bytes]:
    """One answer as (status, raw head, body): read until its Content-Length is whole or
    the server closes."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        data += chunk
        head_, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = next((int(line.split(b":")[1]) for line in head_.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            if length is not None and len(body) >= length:
                return int(head_.split(b" ")[1]), head_, body[:length]
        if not chunk:
            assert data, "the server closed without answering"
            return int(data.split(b" ")[1]), head_, body


def message(body: bytes) -> str:
    return Status.FromString(body).message


def head(extra: str = "", *, chunked: bool = True, host: str | None = "127.0.0.1",
         close: bool = True) -> bytes:
    lines = ["POST /v1/traces HTTP/1.1", f"Content-Type: {PROTOBUF}"]
    if close:
        lines.append("Connection: close")
    if host is not None:
        lines.append(f"Host: {host}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


@pytest.fixture
def guarded() -> Iterator[Guarded]:
    store = SpanStore(None)
    collector = Collector(store, port=0, max_body_bytes=LIMIT, request_timeout_seconds=DEADLINE,
                          max_attributes_per_span=1000, decode_workers=0).start()
    seeded = protobuf_body([span("kept-a"), span("kept-b"), span("kept-c")])
    guard = Guarded(collector, store)
    assert guard.post(seeded)[0] == 200
    guard.stored = store.spans()
    try:
        yield guard
        assert collector.running
        after = store.spans()
        kept = after.join(guard.stored, on=["trace_id", "span_id"], how="semi")
        assert kept.equals(guard.stored), "a stored span changed"
        assert guard.post(protobuf_body([span("after")]))[0] == 200
    finally:
        collector.stop()
        store.close()


def names(guard: Guarded) -> set[str]:
    return set(guard.store.spans()["name"].to_list())


# ---- chunked bodies --------------------------------------------------------------------------


@pytest.mark.parametrize("size_line", [b"-1", b"+10", b"0x10", b"1_0", b" ", b"", b"g",
                                       b"1" * 17, b"10 10", "１０".encode()])
def test_a_malformed_or_negative_chunk_size_is_400(guarded: Guarded, size_line: bytes) -> None:
    code, body = guarded.exchange(head() + size_line + b"\r\n" + b"x" * 64 + b"\r\n0\r\n\r\n")
    assert code == 400 and "chunk size" in message(body)


def test_a_negative_chunk_size_cannot_stream_past_the_limit(guarded: Guarded) -> None:
    # The case: -1 then data for ever. Answered at once, the stream never read.
    with socket.create_connection(("127.0.0.1", guarded.collector.port), timeout=10) as sock:
        sock.sendall(head() + b"-1\r\n")
        sent = 0
        try:
            while sent < 64 * LIMIT:
                sent += sock.send(b"\0" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        code, body = read_response(sock)
    assert code == 400 and sent < 64 * LIMIT


def test_chunks_adding_up_past_the_limit_are_413_before_being_read(guarded: Guarded) -> None:
    code, body = guarded.exchange(head() + f"{LIMIT + 1:x}\r\n".encode())
    assert code == 413 and "max_body_bytes" in message(body)
    chunk = b"\0" * (LIMIT // 4)
    many = b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(5))
    code, body = guarded.exchange(head() + many + b"0\r\n\r\n")
    assert code == 413 and "exceeds the limit" in message(body)


def test_tiny_chunks_cannot_stretch_a_body_without_bound(guarded: Guarded) -> None:
    tiny = (b"1;" + b"e" * 60 + b"\r\nx\r\n") * (LIMIT // 60)
    code, body = guarded.exchange(head() + tiny + b"0\r\n\r\n")
    assert code == 413 and "chunk framing" in message(body)


@pytest.mark.parametrize(("rest", "words"), [
    (b"3\r\nabcXY", "not followed by CRLF"),
    (b"3\r\nab", "body ended"),
    (b"1;" + b"x" * 5000 + b"\r\na\r\n0\r\n\r\n", "longer than 4096 bytes"),
    (b"0\r\n" + b"X-Trailer: 1\r\n" * 65 + b"\r\n", "more than 64 trailer lines"),
])
def test_broken_chunk_framing_is_400(guarded: Guarded, rest: bytes, words: str) -> None:
    code, body = guarded.exchange(head() + rest)
    assert code == 400 and words in message(body)


def test_a_well_formed_chunked_body_with_extensions_and_trailers_is_stored(
        guarded: Guarded) -> None:
    body = protobuf_body([span("chunked")])
    chunks = (f"{10:X};name=value\r\n".encode() + body[:10] + b"\r\n"
              + f"{len(body) - 10:x}\r\n".encode() + body[10:] + b"\r\n"
              + b"0\r\nX-Checksum: none\r\n\r\n")
    code, _ = guarded.exchange(head() + chunks)
    assert code == 200 and "chunked" in names(guarded)


# ---- lengths, framings and hosts -------------------------------------------------------------


def test_two_content_lengths_are_400_even_when_equal(guarded: Guarded) -> None:
    body = protobuf_body([span("smuggled")])
    for second in (len(body), len(body) - 3):
        code, raw = guarded.exchange(head(f"Content-Length: {len(body)}\r\n"
                                          f"Content-Length: {second}\r\n", chunked=False) + body)
        assert code == 400 and "2 Content-Length headers" in message(raw)
    assert "smuggled" not in names(guarded)


@pytest.mark.parametrize("value", ["+5", "5_0", "-1", "0x10", "٥", "1" * 30, "5, 5"])
def test_a_content_length_that_is_not_digits_is_400(guarded: Guarded, value: str) -> None:
    code, raw = guarded.exchange(head(f"Content-Length: {value}\r\n", chunked=False) + b"x" * 5)
    assert code == 400 and "invalid Content-Length" in message(raw)


def test_content_length_beside_transfer_encoding_is_400(guarded: Guarded) -> None:
    body = protobuf_body([span("smuggled")])
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    code, raw = guarded.exchange(head(f"Content-Length: {len(chunked)}\r\n") + chunked)
    assert code == 400 and "both Content-Length and Transfer-Encoding" in message(raw)
    code, raw = guarded.exchange(head("Transfer-Encoding: gzip\r\n") + chunked)
    assert code == 501 and "unsupported Transfer-Encoding 'chunked, gzip'" in message(raw)
    assert "smuggled" not in names(guarded)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:4281", "127.0.0.1.nip.io",
                                  "localhost.evil.example", "[::2]", "10.1.2.3", "localhost:x",
                                  "[::1", ""])
def test_a_host_other_than_this_collectors_is_refused(guarded: Guarded, host: str) -> None:
    body = protobuf_body([span("rebound")])
    data = head(f"Content-Length: {len(body)}\r\n", chunked=False, host=host) + body
    code, raw = guarded.exchange(data)
    assert code in (400, 403)
    if code == 403:
        assert "is not allowed" in message(raw) and "DNS rebinding" in message(raw)
    get = f"GET /v1/traces HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    assert guarded.exchange(get)[0] in (400, 403)
    assert "rebound" not in names(guarded)


def test_a_missing_or_repeated_host_is_400(guarded: Guarded) -> None:
    body = protobuf_body([span("hostless")])
    code, raw = guarded.exchange(head(f"Content-Length: {len(body)}\r\n", chunked=False,
                                      host=None) + body)
    assert code == 400 and "exactly one Host header, got 0" in message(raw)
    code, raw = guarded.exchange(head(f"Host: localhost\r\nContent-Length: {len(body)}\r\n",
                                      chunked=False) + body)
    assert code == 400 and "got 2" in message(raw)


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:4281", "localhost.", "127.0.0.1:1",
                                  "[::1]:4281", "127.0.0.2"])
def test_loopback_hosts_are_accepted(guarded: Guarded, host: str) -> None:
    body = protobuf_body([span(f"via {host}")])
    code, _ = guarded.exchange(head(f"Content-Length: {len(body)}\r\n", chunked=False,
                                    host=host) + body)
    assert code == 200 and f"via {host}" in names(guarded)


def test_a_configured_host_name_is_accepted_besides_loopback() -> None:
    store = SpanStore(None)
    collector = Collector(store, host="localhost", port=0, decode_workers=0).start()
    try:
        guard = Guarded(collector, store)
        body = protobuf_body([span("named")])
        for host, expected in (("localhost", 200), ("halo.internal", 403)):
            data = head(f"Content-Length: {len(body)}\r\n", chunked=False, host=host) + body
            assert guard.exchange(data)[0] == expected
    finally:
        collector.stop()
        store.close()


# ---- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"[" * 10_000 + b"]" * 10_000,
                                  b'{"resourceSpans":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
                                  b'{"a":' * 10_000 + b"1" + b"}" * 10_000])
def test_json_nested_10k_deep_is_400(guarded: Guarded, body: bytes) -> None:
    code, raw = guarded.post(body, JSON)
    assert code == 400 and json.loads(raw)["message"].startswith("body is not valid UTF-8 JSON")


def test_protobuf_nested_10k_deep_is_400(guarded: Guarded) -> None:
    value = b"\x0a\x01x"
    for _ in range(10_000):
        inner = b"\x0a" + varint(len(value)) + value
        value = b"\x2a" + varint(len(inner)) + inner
    attribute = b"\x0a\x01k\x12" + varint(len(value)) + value
    spans = b"\x0a\x10" + bytes(range(1, 17)) + b"\x12\x08" + bytes(range(1, 9))
    spans += b"\x4a" + varint(len(attribute)) + attribute
    body = field(1, field(2, field(2, spans)))
    code, raw = guarded.post(body)
    assert code == 400 and "not a valid protobuf" in message(raw)


@pytest.mark.parametrize(("value", "reason"), [
    ({"boolValue": "false"}, "boolValue must be true or false, got a string 'false'"),
    ({"intValue": 1.9}, "intValue 1.9 is not an integer"),
])
def test_a_json_value_of_the_wrong_type_rejects_its_span_never_stores_a_guess(
        guarded: Guarded, value: dict, reason: str) -> None:
    request = json_request([span("mistyped"), span("sound")])
    request["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"] = [
        {"key": "flag", "value": value}]
    code, raw = guarded.post(json.dumps(request).encode(), JSON)
    partial = json.loads(raw)["partialSuccess"]
    assert code == 200 and partial["rejectedSpans"] == "1"
    assert reason in partial["errorMessage"]
    assert "sound" in names(guarded) and "mistyped" not in names(guarded)


def test_a_span_over_the_attribute_cap_is_rejected_with_a_message(guarded: Guarded) -> None:
    wide = span("wide", attrs={f"k{n}": n for n in range(1_001)})
    body = protobuf_body([wide, span("narrow", attrs={f"k{n}": n for n in range(1_000)})])
    code, raw = guarded.post(body)
    partial = ExportTraceServiceResponse.FromString(raw).partial_success
    assert code == 200 and partial.rejected_spans == 1
    assert "1001 attributes exceed the limit of 1000 per span" in partial.error_message
    assert "narrow" in names(guarded) and "wide" not in names(guarded)


def test_100k_attributes_in_one_span_are_rejected_not_decoded(guarded: Guarded) -> None:
    attribute = b"\x0a\x01k\x12\x03\x0a\x01v"
    attributes = (b"\x4a" + varint(len(attribute)) + attribute) * 100_000
    spans = b"\x0a\x10" + bytes(range(1, 17)) + b"\x12\x08" + bytes(range(1, 9)) + attributes
    body = gzip.compress(field(1, field(2, field(2, spans))))
    code, raw = guarded.post(body, headers={"Content-Encoding": "gzip"})
    partial = ExportTraceServiceResponse.FromString(raw).partial_success
    assert code == 200 and partial.rejected_spans == 1
    assert "100000 attributes exceed the limit" in partial.error_message


def test_mangled_bodies_are_400_or_partial_success_never_500(guarded: Guarded) -> None:
    rng = random.Random(12)
    good_pb = protobuf_body([span("m", attrs={"a": [1, {"b": 2.5}], "llm.model_name": "x"})])
    good_json = json.dumps(json_request([span("m", attrs={"a": [1, {"b": True}]})])).encode()
    for n in range(150):
        base, content_type = (good_pb, PROTOBUF) if n % 2 else (good_json, JSON)
        body = bytearray(base)
        for _ in range(rng.randrange(1, 6)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        if rng.random() < 0.3:
            body = body[:rng.randrange(len(body))]
        code, _ = guarded.post(bytes(body), content_type)
        assert code in (200, 400), (n, bytes(body))


def test_a_client_resetting_mid_request_is_dropped_quietly(
        guarded: Guarded, capfd: pytest.CaptureFixture[str]) -> None:
    rejected = guarded.collector.counts.requests_rejected
    for data in (b"POST /v1/tr", head("Content-Length: 1000\r\n", chunked=False) + b"x" * 10):
        sock = socket.create_connection(("127.0.0.1", guarded.collector.port), timeout=10)
        sock.sendall(data)
        time.sleep(0.05)  # the server is waiting for the rest
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, not an orderly end
    for _ in range(100):
        if guarded.collector.counts.requests_rejected > rejected:
            break
        time.sleep(0.02)
    assert guarded.collector.counts.requests_rejected == rejected + 1
    assert "Traceback" not in capfd.readouterr().err


# ---- deadlines and connection floods (fault tier: they wait or load the machine) -------------


@pytest.mark.fault
def test_a_content_length_larger_than_the_body_is_408_at_the_deadline(guarded: Guarded) -> None:
    body = protobuf_body([span("short")])
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", guarded.collector.port), timeout=30) as sock:
        sock.sendall(head(f"Content-Length: {len(body) + 100}\r\n", chunked=False) + body)
        code, raw = read_response(sock)  # the client keeps the connection open, silent
    elapsed = time.monotonic() - started
    assert code == 408 and "request_timeout_seconds" in message(raw)
    assert DEADLINE <= elapsed < DEADLINE + 5
    assert "short" not in names(guarded)


@pytest.mark.fault
@pytest.mark.parametrize("part", ["request line", "headers", "body"])
def test_a_trickling_client_is_cut_off_at_the_deadline_not_per_read(
        guarded: Guarded, part: str) -> None:
    body = protobuf_body([span("trickled")])
    data = head(f"Content-Length: {len(body)}\r\n", chunked=False) + body
    start = {"request line": 0, "headers": data.index(b"\r\n") + 2,
             "body": len(data) - len(body)}[part]
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", guarded.collector.port), timeout=30) as sock:
        sock.sendall(data[:start])
        try:
            for byte in data[start:]:  # one byte every 0.2 s: each read succeeds in time
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass
        code, _ = read_response(sock)
    assert code == 408
    assert time.monotonic() - started < DEADLINE + 3
    assert "trickled" not in names(guarded)


@pytest.mark.fault
def test_200_simultaneous_connections_are_all_answered(guarded: Guarded) -> None:
    bodies = [protobuf_body([span(f"burst {n}")]) for n in range(200)]
    # Every connect lands in the listen backlog before any is served. A full backlog drops
    # the SYN and the client retries after a second: a 0.5 s connect timeout catches that.
    sockets = [socket.create_connection(("127.0.0.1", guarded.collector.port), timeout=0.5)
               for _ in bodies]
    codes: list[int] = []

    def send(sock: socket.socket, body: bytes) -> None:
        sock.settimeout(30)
        with sock:
            sock.sendall(head(f"Content-Length: {len(body)}\r\n", chunked=False) + body)
            codes.append(read_response(sock)[0])

    threads = [threading.Thread(target=send, args=pair)
               for pair in zip(sockets, bodies, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert codes == [200] * 200
    assert {f"burst {n}" for n in range(200)} <= names(guarded)


# ---- connection and body budgets: a flood costs threads and memory up to the caps ----------


@pytest.fixture
def capped() -> Iterator[Guarded]:
    """A collector serving at most 4 connections and holding at most 1 MiB of bodies
    beyond each one's first 64 KiB."""
    store = SpanStore(None)
    collector = Collector(store, port=0, max_body_bytes=LIMIT, max_buffered_bytes=LIMIT,
                          max_connections=4, request_timeout_seconds=20, decode_workers=0,
                          body_allowance_bytes=ALLOWANCE).start()
    try:
        yield Guarded(collector, store)
        assert collector.running and collector.body_budget.held == 0
    finally:
        collector.stop()
        store.close()


def keep_alive_head(length: int, extra: str = "") -> bytes:
    """A keep-alive POST's request line and headers, for a body of ``length`` bytes."""
    return head(f"Content-Length: {length}\r\n{extra}", chunked=False, close=False)


def connect(guard: Guarded) -> socket.socket:
    return socket.create_connection(("127.0.0.1", guard.collector.port), timeout=10)


def keep_alive_post(sock: socket.socket, name: str) -> tuple[int, bytes, bytes]:
    """Post one span on an open connection: (status, raw head, body)."""
    body = protobuf_body([span(name)])
    sock.sendall(keep_alive_head(len(body)) + body)
    return read_answer(sock)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def serving_threads() -> int:
    """The collector's threads serving a connection."""
    return sum(1 for t in threading.enumerate() if t.name.endswith("(process_request_thread)"))


def test_past_the_connection_cap_an_idle_connection_makes_room_else_503(
        capped: Guarded) -> None:
    server = capped.collector._server
    assert server is not None
    threads_before = threading.active_count()
    four = [connect(capped) for _ in range(4)]
    for n, sock in enumerate(four):
        assert keep_alive_post(sock, f"idle {n}")[0] == 200
    wait_until(lambda: len(server._idle) == 4, "the four connections never waited idle")
    time.sleep(IDLE_GRACE_S + 0.1)
    fifth = connect(capped)  # all four are idle: the one idle longest gives up its slot
    assert keep_alive_post(fifth, "fifth")[0] == 200
    closed = [sock for sock in four if select.select([sock], [], [], 2)[0] and not sock.recv(1)]
    assert len(closed) == 1
    busy = [sock for sock in four if sock is not closed[0]] + [fifth]
    body = protobuf_body([span("slow")])
    for sock in busy:  # each now sends half a request: no connection is idle
        sock.sendall(keep_alive_head(len(body)) + body[:10])
    wait_until(lambda: not server._idle, "the connections never became busy")
    with connect(capped) as refused:
        code, head_, raw = keep_alive_post(refused, "refused")
        assert code == 503 and b"Retry-After: 1" in head_
        assert "max_connections" in message(raw)
        assert refused.recv(1) == b""
    assert serving_threads() <= 4
    assert threading.active_count() <= threads_before + 4 + 1  # + the one refusing thread
    busy[0].sendall(body[10:])  # one request completes; its connection is idle again
    assert read_answer(busy[0])[0] == 200
    wait_until(lambda: len(server._idle) == 1, "the answered connection never waited idle")
    time.sleep(IDLE_GRACE_S + 0.1)
    with connect(capped) as late:
        assert keep_alive_post(late, "late")[0] == 200
    for sock in [*four, fifth]:
        sock.close()
    stored = names(capped)
    assert {"idle 0", "idle 1", "idle 2", "idle 3", "fifth", "slow", "late"} <= stored
    assert "refused" not in stored


def test_bodies_past_the_buffer_budget_are_503_before_being_read(capped: Guarded) -> None:
    big = protobuf_body([span("big", attrs={"pad": "x" * (LIMIT // 2)})])
    charge = len(big) - ALLOWANCE
    assert 2 * charge <= LIMIT < 3 * charge  # two fit in the budget, three not
    holders = [connect(capped) for _ in range(2)]
    for sock in holders:
        sock.sendall(keep_alive_head(len(big)) + big[:100])
    wait_until(lambda: capped.collector.body_budget.held == 2 * charge,
               "the two bodies were never counted")
    started = time.monotonic()
    with connect(capped) as third:
        third.sendall(keep_alive_head(len(big)))
        code, head_, raw = read_answer(third)
    assert code == 503 and b"Retry-After: 1" in head_
    assert "max_buffered_bytes" in message(raw)
    assert time.monotonic() - started < 5  # answered at once, not at a deadline
    with connect(capped) as small:  # within its allowance, an ordinary batch still goes in
        assert keep_alive_post(small, "small")[0] == 200
    chunk = LIMIT // 2
    with connect(capped) as chunked:  # a chunk is counted before it is read
        chunked.sendall(head() + f"{chunk:x}\r\n".encode())
        assert read_answer(chunked)[0] == 503
    zipped = gzip.compress(b"\0" * (LIMIT - 1))  # small on the wire, large inflated
    with connect(capped) as inflated:
        inflated.sendall(keep_alive_head(len(zipped), "Content-Encoding: gzip\r\n") + zipped)
        assert read_answer(inflated)[0] == 503
    holders[0].sendall(big[100:])
    assert read_answer(holders[0])[0] == 200
    with connect(capped) as after:
        after.sendall(keep_alive_head(len(big)) + big)
        assert read_answer(after)[0] == 200
    holders[1].close()
    wait_until(lambda: capped.collector.body_budget.held == 0, "a body was never given back")
    assert names(capped) == {"big", "small"}


@pytest.mark.fault
def test_a_flood_of_connections_is_answered_with_threads_bounded_by_the_cap(
        capped: Guarded) -> None:
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], serving_threads())
            time.sleep(0.002)

    codes: dict[str, int] = {}

    def client(n: int) -> None:
        name = f"flood {n}"
        try:
            with connect(capped) as sock:
                codes[name] = keep_alive_post(sock, name)[0]
        except (OSError, AssertionError):  # closed unanswered: past the refusal queue
            codes[name] = 0

    watcher = threading.Thread(target=watch)
    watcher.start()
    clients = [threading.Thread(target=client, args=(n,)) for n in range(300)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(timeout=60)
    done.set()
    watcher.join()
    assert 1 <= peak[0] <= 4  # threads serving connections, whatever the flood
    assert len(codes) == 300 and set(codes.values()) <= {200, 503, 0}
    answered_200 = {name for name, code in codes.items() if code == 200}
    assert len(answered_200) >= 4 and answered_200 <= names(capped)


# ---- files -------------------------------------------------------------------------------------


@pytest.fixture
def exported(tmp_path: Path) -> tuple[SpanStore, Path]:
    """A store with two traces and their snapshot file."""
    store = SpanStore(None)
    from halo_nb.ingest.otlp import decode_protobuf

    store.append(decode_protobuf(protobuf_body([span("one"), span("two")])).frame)
    path = export_snapshot(store, None, tmp_path / "two.json")
    yield store, path
    store.close()


def _special_files(tmp_path: Path) -> dict[str, Path]:
    fifo, folder = tmp_path / "pipe", tmp_path / "folder"
    os.mkfifo(fifo)
    folder.mkdir()
    files = {"FIFO": fifo, "directory": folder}
    if os.geteuid() == 0:  # a device node of our own, never the system's /dev/full
        device = tmp_path / "full"
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
        files["character device"] = device
    return files


def test_export_refuses_a_fifo_a_directory_or_a_device_and_leaves_it(
        exported: tuple[SpanStore, Path], tmp_path: Path) -> None:
    store, _ = exported
    for kind, path in _special_files(tmp_path).items():
        before = os.lstat(path)
        with pytest.raises(SnapshotFileError, match=f"{path}: is an? {kind}"):
            export_snapshot(store, None, path)
        after = os.lstat(path)
        assert (after.st_mode, after.st_ino, after.st_rdev) == (
            before.st_mode, before.st_ino, before.st_rdev), kind
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_import_refuses_a_fifo_a_directory_and_a_device_at_once(
        exported: tuple[SpanStore, Path], tmp_path: Path) -> None:
    store, _ = exported
    before = store.spans()
    targets = dict(_special_files(tmp_path), zero=Path("/dev/zero"))
    for kind, path in targets.items():
        started = time.monotonic()
        with pytest.raises(SnapshotFileError, match="not a regular file"):
            import_snapshot(store, path)
        assert time.monotonic() - started < 5, f"{kind} was read"
    assert store.spans().equals(before)


def test_import_refuses_a_file_over_the_size_cap_before_reading_it(
        exported: tuple[SpanStore, Path], tmp_path: Path) -> None:
    store, path = exported
    huge = tmp_path / "huge.json"
    with huge.open("wb") as fh:
        fh.truncate(1 << 30)  # 1 GiB, sparse: nothing to read but zeros
    tracemalloc.start()
    try:
        with pytest.raises(SnapshotFileError, match=r"1073741824 bytes is larger than the "
                                                    r"limit of \d+ bytes \(max_snapshot_bytes\)"):
            read_snapshot(huge)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    with pytest.raises(SnapshotFileError, match="max_snapshot_bytes"):
        read_snapshot(path, max_bytes=path.stat().st_size - 1)
    assert read_snapshot(path, max_bytes=path.stat().st_size).span_count == 2


def test_a_snapshot_nested_past_any_parser_is_corrupt_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"format": "halo_nb.snapshot", "version": 1, "trace_ids": [], '
                    '"span_count": 0, "checksum": "x", "payload": {"a": '
                    + "[" * 100_000 + "]" * 100_000 + "}}")
    with pytest.raises(SnapshotCorruptError, match="nested too deeply"):
        read_snapshot(path)


def test_reimporting_known_ids_with_other_content_is_a_conflict_importing_nothing(
        exported: tuple[SpanStore, Path], tmp_path: Path) -> None:
    store, path = exported
    assert import_snapshot(store, path).spans_added == 0  # the same content: a repeat
    envelope = json.loads(path.read_text())
    payload = envelope["payload"]
    payload["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] = "renamed"
    new = span("brand new")
    payload["resourceSpans"][0]["scopeSpans"][0]["spans"].append(
        json_request([new])["resourceSpans"][0]["scopeSpans"][0]["spans"][0])
    envelope["span_count"] += 1
    envelope["trace_ids"].append(new["trace_id"])
    from halo_nb.interchange.snapshot import checksum

    envelope["checksum"] = checksum(payload)
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(envelope))
    before = store.spans()
    renamed_trace = payload["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
    with pytest.raises(SnapshotConflictError, match=rf"{changed}: 1 span\(s\) of trace\(s\) "
                                                    rf"{renamed_trace} are already stored with "
                                                    r"different content \(name\); nothing"):
        import_snapshot(store, changed)
    assert store.spans().equals(before)
    assert "brand new" not in store.spans()["name"].to_list()


# ---- the command line --------------------------------------------------------------------------


@pytest.mark.fault
def test_the_cli_refuses_special_files_with_one_line_and_exit_2(tmp_path: Path) -> None:
    storage = tmp_path / "store"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HALO_", "OTEL_"))}
    env["HALO_STORAGE_PATH"] = str(storage)
    files = _special_files(tmp_path)
    for kind, path in files.items():
        result = subprocess.run([*HALO, "import", "--file", str(path)], capture_output=True,
                                text=True, cwd=tmp_path, env=env, timeout=60)
        assert result.returncode == 2, (kind, result.stderr)
        assert "not a regular file" in result.stderr and "Traceback" not in result.stderr
    device = files.get("character device")
    if device is not None:
        result = subprocess.run([*HALO, "export", "--all", "--output", str(device)],
                                capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
        assert result.returncode == 2 and stat.S_ISCHR(os.lstat(device).st_mode)
