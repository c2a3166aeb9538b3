"""What a flood of connections costs the collector: many clients each announce a body
(by default of ``max_body_bytes``) and upload part of it, then stall, while one
well-behaved exporter keeps posting small batches. Large announced bodies meet the body
budget; small ones (within each request's 1 MiB allowance) meet the connection cap.

    python benchmarks/connection_flood.py [--connections 600] [--announce-mib 64]
                                          [--upload-mib 8]

The collector runs in another process with default settings (64 MiB bodies, 256 MiB of
bodies held at once, 256 connections). Printed: the collector's peak RSS and thread
count, how the flood's connections were answered, and what the exporter got meanwhile.
Without the caps, memory would grow with connections x upload (the README gives that
figure from the commit before them).
"""

from __future__ import annotations

import argparse
import http.client
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from otlp_factory import protobuf_body, span  # noqa: E402
from proc_status import status_of  # noqa: E402

MIB = 1 << 20
SERVER = """
from halo_nb.ingest.server import Collector
from halo_nb.storage.store import SpanStore
import sys
collector = Collector(SpanStore(None), port=0).start()
print(collector.port, flush=True)
sys.stdin.read()
"""


def flood_client(port: int, announce: int, upload: int, hold: threading.Event,
                 answers: Counter) -> None:
    """Announce ``announce`` bytes, send ``upload`` of them, stall until ``hold`` is set."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                         f"application/x-protobuf\r\nContent-Length: {announce}\r\n\r\n"
                         .encode())
            piece = b"\0" * MIB
            sent = 0
            while sent < upload:
                sock.sendall(piece[: upload - sent])
                sent += min(MIB, upload - sent)
            sock.settimeout(0.01)
            while not hold.is_set():
                try:
                    data = sock.recv(4096)
                except TimeoutError:
                    continue
                answers[data.split(b" ")[1].decode() if data else "closed"] += 1
                return
            answers["held to the end"] += 1
    except OSError as exc:
        answers[type(exc).__name__] += 1


def exporter(port: int, stop: threading.Event, results: list[tuple[int, float]]) -> None:
    """A well-behaved exporter: a small batch every 0.2 s, a new connection each time."""
    while not stop.is_set():
        body = protobuf_body([span(f"legit {len(results)}") for _ in range(20)])
        started = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            conn.request("POST", "/v1/traces", body,
                         {"Content-Type": "application/x-protobuf"})
            code = conn.getresponse().status
            conn.close()
        except OSError:
            code = 0
        results.append((code, time.monotonic() - started))
        stop.wait(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=600)
    parser.add_argument("--announce-mib", type=float, default=64.0)
    parser.add_argument("--upload-mib", type=float, default=8.0)
    parser.add_argument("--hold-seconds", type=float, default=6.0)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline())
    idle = status_of(server.pid)
    hold, stop = threading.Event(), threading.Event()
    answers: Counter = Counter()
    legit: list[tuple[int, float]] = []
    watcher_peak = {"Threads": 0}

    def watch() -> None:
        while not stop.is_set():
            try:
                watcher_peak["Threads"] = max(watcher_peak["Threads"],
                                              status_of(server.pid)["Threads"])
            except FileNotFoundError:
                return
            time.sleep(0.05)

    threads = [threading.Thread(target=watch), threading.Thread(target=exporter,
                                                               args=(port, stop, legit))]
    threads += [threading.Thread(target=flood_client,
                                 args=(port, int(args.announce_mib * MIB),
                                       int(args.upload_mib * MIB), hold, answers))
                for _ in range(args.connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(args.hold_seconds)
    hold.set()
    for thread in threads[2:]:
        thread.join()
    stop.set()
    threads[1].join()
    threads[0].join()
    peak = status_of(server.pid)
    server.stdin.close()
    server.wait(timeout=30)
    codes = Counter(code for code, _ in legit)
    latencies = sorted(t for _, t in legit)
    print(f"flood: {args.connections} connections, each announcing {args.announce_mib:g} "
          f"MiB and sending "
          f"{args.upload_mib:g} MiB, held {args.hold_seconds:g} s "
          f"({time.monotonic() - started:.1f} s in all)")
    print(f"collector RSS: idle {idle['VmRSS'] / 1024:.0f} MiB, peak "
          f"{peak['VmHWM'] / 1024:.0f} MiB; threads: idle {idle['Threads']}, peak "
          f"{watcher_peak['Threads']}")
    print("flood answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(answers.items())))
    if latencies:
        print(f"exporter meanwhile: {len(legit)} posts, " + ", ".join(
            f"{k}: {v}" for k, v in sorted(codes.items())) + f"; latency median "
            f"{latencies[len(latencies) // 2] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
