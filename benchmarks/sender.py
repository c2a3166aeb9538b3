"""Load generator for the benchmarks, run as a separate process.

    python benchmarks/sender.py URL SPANS CONNECTIONS [SPANS_PER_TRACE]

Builds every request body first (so generating spans does not limit the rate), prints
``ready``, waits for a line on stdin, then POSTs the bodies over CONNECTIONS keep-alive
connections in parallel and prints ``done <seconds> <errors> <cpu seconds>``.
"""

from __future__ import annotations

import http.client
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).parent))

from workload import SPANS_PER_TRACE, request_bodies  # noqa: E402


def send(url: str, bodies: list[bytes], errors: list[str]) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    for body in bodies:
        conn.request("POST", parts.path, body=body,
                     headers={"Content-Type": "application/x-protobuf"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            errors.append(f"HTTP {response.status}")
    conn.close()


def main() -> None:
    url, spans, connections = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    per_trace = int(sys.argv[4]) if len(sys.argv) > 4 else SPANS_PER_TRACE
    bodies = list(request_bodies(spans, spans_per_trace=per_trace))
    print("ready", sum(map(len, bodies)), flush=True)
    sys.stdin.readline()
    errors: list[str] = []
    start = time.perf_counter()
    cpu_start = time.process_time()
    threads = [threading.Thread(target=send, args=(url, bodies[i::connections], errors))
               for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("done", time.perf_counter() - start, len(errors), time.process_time() - cpu_start,
          flush=True)


if __name__ == "__main__":
    main()
