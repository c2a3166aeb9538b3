"""An exporter-like load generator for the durability tests, run as its own process.

    python tests/durability_sender.py URL SPANS_PER_REQUEST CONNECTIONS

Each connection posts OTLP protobuf requests with consecutive, predictable span ids
(request k holds span ids k*SPANS_PER_REQUEST+1 ...), retrying a request (like an OTLP
exporter) until it gets 200, through connection errors while the collector is down.
For every 200 it prints ``ack <request> <time.monotonic()>``. It stops when stdin
closes, after the request in flight on each connection is answered (or fails), and
prints ``done``.
"""

from __future__ import annotations

import http.client
import itertools
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).parent))

from otlp_factory import protobuf_body, span  # noqa: E402


def span_ids(request: int, per_request: int) -> list[str]:
    return [f"{request * per_request + j + 1:016x}" for j in range(per_request)]


def body(request: int, per_request: int) -> bytes:
    trace_id = f"{request + 1:032x}"
    return protobuf_body([span("step", trace_id=trace_id, span_id=span_id,
                               attrs={"input.value": "x" * 200})
                          for span_id in span_ids(request, per_request)])


def main() -> None:
    url, per_request, connections = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    parts = urlsplit(url)
    stop = threading.Event()
    counter = itertools.count()
    counter_lock = threading.Lock()
    out_lock = threading.Lock()

    def send() -> None:
        conn: http.client.HTTPConnection | None = None
        while not stop.is_set():
            with counter_lock:
                request = next(counter)
            payload = body(request, per_request)
            while True:
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                    conn.request("POST", parts.path, body=payload,
                                 headers={"Content-Type": "application/x-protobuf"})
                    response = conn.getresponse()
                    response.read()
                    if response.status == 200:
                        break
                except (OSError, http.client.HTTPException):
                    if conn is not None:
                        conn.close()
                    conn = None
                if stop.is_set():  # told to stop while the collector is down: give up
                    return
                time.sleep(0.02)
            with out_lock:
                print("ack", request, time.monotonic(), flush=True)

    threads = [threading.Thread(target=send) for _ in range(connections)]
    for thread in threads:
        thread.start()
    sys.stdin.read()
    stop.set()
    for thread in threads:
        thread.join()
    print("done", flush=True)


if __name__ == "__main__":
    main()
