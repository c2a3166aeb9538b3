"""The worst-case cost of one hostile request of each kind: CPU seconds the collector
spends (its process and its JSON decoding workers) per MiB of body, and its answer.

    python benchmarks/hostile.py [--mib 1 8]

Each kind is sent once per size to a collector in another process (an in-memory store,
default settings apart from the attribute cap, which the "no cap" rows disable to show
the decoder's own cost). "sent" is the body on the wire; "body" what the collector must
process, the same but for gzip, where it is the decompressed size (inflation stops at
max_body_bytes, 64 MiB). Target: at most 1 s of CPU per MiB of body for any request.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from otlp_factory import field, varint  # noqa: E402  (protobuf by hand, any shape)

MIB = 1 << 20
SERVER = """
import sys
from halo_nb.ingest.server import Collector
from halo_nb.storage.store import SpanStore
cap = int(sys.argv[1])
collector = Collector(SpanStore(None), port=0, max_attributes_per_span=cap or None).start()
collector.start_decoders()
print(collector.port, flush=True)
sys.stdin.read()
collector.stop()
"""


# ---- requests built by hand (any shape, any depth) ---------------------------------------------


def request(spans: bytes) -> bytes:
    return field(1, field(2, spans))


def pb_span(trace: bytes, span_id: bytes, extra: bytes = b"") -> bytes:
    return field(2, field(1, trace) + field(2, span_id) + extra)


def attribute(key: bytes, value: bytes = b"v") -> bytes:
    return field(9, field(1, key) + field(2, field(1, value)))


def fill(size: int, piece: Callable[[int], bytes]) -> list[bytes]:
    pieces, total, n = [], 0, 0
    while total < size:
        pieces.append(piece(n))
        total += len(pieces[-1])
        n += 1
    return pieces


TRACE, SPAN = bytes(range(1, 17)), bytes(range(1, 9))


def distinct_attributes(size: int) -> bytes:
    return request(pb_span(TRACE, SPAN, b"".join(fill(size, lambda n: attribute(b"k%d" % n)))))


def one_key_repeated(size: int) -> bytes:
    return request(pb_span(TRACE, SPAN, b"".join(fill(size, lambda n: attribute(b"same")))))


def colliding_trace_ids(size: int) -> bytes:
    # Ids with equal halves, which all shared one slot of the old, unkeyed trace-id set.
    return request(b"".join(fill(size, lambda n: pb_span((n + 1).to_bytes(8, "big") * 2,
                                                         (n + 1).to_bytes(8, "big")))))


def reference_fallback(size: int) -> bytes:
    # One rejected span sends the whole request to the Python reference decoder: minimal
    # spans make that path's cost per byte as high as it gets.
    bad = pb_span(TRACE[:15], SPAN)
    return request(bad + b"".join(fill(size, lambda n: pb_span(TRACE, (n + 1).to_bytes(8, "big")))))


def nested_protobuf(size: int) -> bytes:
    """An AnyValue inside arrays inside arrays..., as deep as ``size`` bytes allow (built
    from the inside out: the length prefixes, then one join)."""
    prefixes, inner = [], 3  # the leaf: field(1, b"x")
    while inner < size:
        array = b"\x0a" + varint(inner)  # ArrayValue.values
        value = b"\x2a" + varint(len(array) + inner)  # AnyValue.array_value
        prefixes.append(value + array)
        inner += len(value) + len(array)
    nested = b"".join(reversed(prefixes)) + field(1, b"x")
    return request(pb_span(TRACE, SPAN, field(9, field(1, b"k") + field(2, nested))))


def mangled_protobuf(size: int) -> bytes:
    body = bytearray(distinct_attributes(size))
    body[len(body) // 2] ^= 0xFF
    return bytes(body)


# ---- JSON --------------------------------------------------------------------------------------


def json_request(spans: list[dict]) -> bytes:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()


def json_attributes(size: int) -> bytes:
    count = max(1, size // 40)
    attrs = [{"key": f"k{n}", "value": {"stringValue": "v"}} for n in range(count)]
    return json_request([{"traceId": TRACE.hex(), "spanId": SPAN.hex(), "attributes": attrs}])


def json_mistyped_spans(size: int) -> bytes:
    one = {"traceId": TRACE.hex(), "spanId": SPAN.hex(),
           "attributes": [{"key": "flag", "value": {"boolValue": "false"}}]}
    count = max(1, size // len(json.dumps(one)))
    return json_request([one] * count)


def json_nested(size: int) -> bytes:
    depth = size // 2
    return b"[" * depth + b"]" * depth


def json_many_spans(size: int) -> bytes:
    one = {"traceId": TRACE.hex(), "spanId": "", "name": "s"}
    spans = []
    for n in range(max(1, size // 80)):
        spans.append(dict(one, spanId=f"{n + 1:016x}"))
    return json_request(spans)


# ---- framing -----------------------------------------------------------------------------------


def gzip_bomb(size: int) -> bytes:
    """Zeros, 64 times ``size`` of them (at most 512 MiB): past max_body_bytes either way."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    parts = [compressor.compress(zeros) for _ in range(min(64 * size // MIB, 512))]
    return b"".join(parts) + compressor.flush()


def tiny_chunks(size: int) -> bytes:
    return b"1\r\nx\r\n" * (size // 6) + b"0\r\n\r\n"


# ---- the measurement -------------------------------------------------------------------------


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its children (the decoding workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def send(port: int, body: bytes, content_type: str, headers: dict[str, str]) -> int:
    if headers.get("Transfer-Encoding") == "chunked":
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            sock.sendall(f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                         f"{content_type}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
            try:
                sock.sendall(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return int(sock.recv(64).split(b" ")[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", "/v1/traces", body=body,
                     headers={"Content-Type": content_type, **headers})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


CASES: list[tuple[str, Callable[[int], bytes], str, dict[str, str], bool]] = [
    ("protobuf: one span, distinct attribute keys", distinct_attributes, "pb", {}, True),
    ("protobuf: one span, distinct attribute keys (no cap)", distinct_attributes, "pb", {},
     False),
    ("protobuf: one span, one key repeated (no cap)", one_key_repeated, "pb", {}, False),
    ("protobuf: colliding trace ids, one span each", colliding_trace_ids, "pb", {}, True),
    ("protobuf: one rejected span + minimal spans (reference)", reference_fallback, "pb", {},
     True),
    ("protobuf: one value nested to the body's size", nested_protobuf, "pb", {}, True),
    ("protobuf: one byte mangled", mangled_protobuf, "pb", {}, True),
    ("json: one span, distinct attribute keys", json_attributes, "json", {}, True),
    ("json: one span, distinct attribute keys (no cap)", json_attributes, "json", {}, False),
    ("json: spans with boolValue \"false\"", json_mistyped_spans, "json", {}, True),
    ("json: minimal spans", json_many_spans, "json", {}, True),
    ("json: brackets nested to the body's size", json_nested, "json", {}, True),
    ("gzip bomb (zeros)", gzip_bomb, "pb", {"Content-Encoding": "gzip"}, True),
    ("chunked: 1-byte chunks", tiny_chunks, "pb", {"Transfer-Encoding": "chunked"}, True),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, nargs="+", default=[1, 8])
    args = parser.parse_args()
    servers = {}
    for cap in (1000, 0):
        process = subprocess.Popen([sys.executable, "-c", SERVER, str(cap)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        servers[bool(cap)] = (process, int(process.stdout.readline()))
    types = {"pb": "application/x-protobuf", "json": "application/json"}
    print(f"{'request':58} {'sent MiB':>8} {'body MiB':>8} {'status':>6} {'CPU s':>7} "
          f"{'CPU s/MiB':>9} {'wall s':>7}")
    worst = 0.0
    try:
        for name, build, kind, headers, capped in CASES:
            process, port = servers[capped]
            for mib in args.mib:
                body = build(int(mib * MIB))
                before, started = tree_cpu(process.pid), time.monotonic()
                status = send(port, body, types[kind], headers)
                wall = time.monotonic() - started
                cpu = tree_cpu(process.pid) - before
                sent = size = len(body) / MIB
                note = ""
                if headers.get("Content-Encoding") == "gzip":
                    inflated = len(zlib.decompress(body, wbits=31)) / MIB
                    size = min(inflated, 64.0)
                    note = f"  (inflates to {inflated:,.0f} MiB)"
                worst = max(worst, cpu / size)
                print(f"{name:58} {sent:8.2f} {size:8.2f} {status:6d} {cpu:7.2f} "
                      f"{cpu / size:9.2f} {wall:7.2f}{note}")
    finally:
        for process, _ in servers.values():
            process.stdin.close()
            process.wait(timeout=30)
    print(f"worst: {worst:.2f} s of CPU per MiB of body (target <= 1)")


if __name__ == "__main__":
    main()
