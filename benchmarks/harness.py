"""Shared set-up for the ingest and responsiveness benchmarks: a collector in this
process, a sender in another."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workload import SPANS_PER_TRACE

from halo_nb.ingest.server import Collector
from halo_nb.storage.store import SpanStore

SENDER = Path(__file__).parent / "sender.py"


@dataclass
class IngestRun:
    spans: int
    body_bytes: int
    seconds: float
    sender_seconds: float
    # CPU time this (the collector's) process used, all threads, until all were queryable.
    cpu_seconds: float
    # From the go signal until every span was also written to Parquet (0 when in memory).
    durable_seconds: float
    sender_cpu_seconds: float

    @property
    def spans_per_second(self) -> float:
        return self.spans / self.seconds


def run_ingest(spans: int, connections: int, persist: bool,
               while_waiting: Callable[[], None] | None = None,
               spans_per_trace: int = SPANS_PER_TRACE, durability: str = "async") -> IngestRun:
    """Start a collector, let the sender post ``spans`` spans, and time from the go signal
    until every span is queryable through ``store.spans()`` (and then until it is on
    disk, which the store does in the background; with ``durability="sync"`` every span
    is on disk when the sender has its last 200: ``sender_seconds``)."""
    with tempfile.TemporaryDirectory() as folder:
        store = SpanStore(Path(folder) / "data" if persist else None, durability=durability)
        collector = Collector(store, port=0, max_body_bytes=64 << 20).start()
        sender = subprocess.Popen(
            [sys.executable, str(SENDER), collector.traces_url, str(spans), str(connections),
             str(spans_per_trace)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert sender.stdin is not None and sender.stdout is not None
        ready = sender.stdout.readline().split()
        if not ready or ready[0] != "ready":
            raise RuntimeError(f"sender failed to start: {ready}")
        start = time.perf_counter()
        cpu_start = time.process_time()
        sender.stdin.write("go\n")
        sender.stdin.flush()
        while len(store) < spans:
            if while_waiting is not None:
                while_waiting()
            else:
                time.sleep(0.002)
            if sender.poll() not in (None, 0):
                raise RuntimeError("sender failed")
        queryable = store.spans().height
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
        store.flush()
        durable_seconds = time.perf_counter() - start if persist else 0.0
        done = sender.stdout.readline().split()
        sender.wait()
        collector.stop()
        store.close()
        if queryable != spans or done[0] != "done" or done[2] != "0":
            raise RuntimeError(f"lost spans: {queryable} of {spans} queryable, sender {done}")
        return IngestRun(spans, int(ready[1]), seconds, float(done[1]), cpu_seconds,
                         durable_seconds, float(done[3]))

