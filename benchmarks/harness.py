"""Shared set-up for the ingest and responsiveness benchmarks: a collector in this
process, a sender in another."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from halo_nb.collector import Collector
from halo_nb.span_store import SpanStore

SENDER = Path(__file__).parent / "sender.py"


@dataclass
class IngestRun:
    spans: int
    body_bytes: int
    seconds: float
    sender_seconds: float
    # CPU time this (the collector's) process used, all threads, during the run.
    cpu_seconds: float
    # CPU time the collector's decoding worker processes used during the run.
    worker_cpu_seconds: float

    @property
    def spans_per_second(self) -> float:
        return self.spans / self.seconds


def run_ingest(spans: int, connections: int, persist: bool,
               while_waiting: Callable[[], None] | None = None) -> IngestRun:
    """Start a collector, let the sender post ``spans`` spans, and time from the go signal
    until every span is queryable through ``store.spans()``."""
    with tempfile.TemporaryDirectory() as folder:
        store = SpanStore(Path(folder) / "data" if persist else None)
        collector = Collector(store, port=0, max_body_bytes=64 << 20).start()
        collector.start_decoders()
        sender = subprocess.Popen(
            [sys.executable, str(SENDER), collector.traces_url, str(spans), str(connections)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert sender.stdin is not None and sender.stdout is not None
        ready = sender.stdout.readline().split()
        if not ready or ready[0] != "ready":
            raise RuntimeError(f"sender failed to start: {ready}")
        start = time.perf_counter()
        cpu_start = time.process_time()
        workers_start = _children_cpu(exclude=sender.pid)
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
        worker_cpu_seconds = _children_cpu(exclude=sender.pid) - workers_start
        done = sender.stdout.readline().split()
        sender.wait()
        collector.stop()
        store.close()
        if queryable != spans or done[0] != "done" or done[2] != "0":
            raise RuntimeError(f"lost spans: {queryable} of {spans} queryable, sender {done}")
        return IngestRun(spans, int(ready[1]), seconds, float(done[1]), cpu_seconds,
                         worker_cpu_seconds)


def _children_cpu(exclude: int) -> float:
    """CPU seconds (user + system) used so far by this process's live children, except
    ``exclude`` (the sender)."""
    me = str(os.getpid())
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == exclude:
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:  # ppid
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")
