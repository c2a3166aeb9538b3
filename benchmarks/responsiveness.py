"""Main-thread responsiveness in the process hosting the collector while it ingests at
full rate: how late does a 1 ms timer fire (p50, p99, max)?

    python benchmarks/responsiveness.py [--spans 200000] [--connections 4]

The main thread plays the notebook kernel: it sleeps 1 ms at a time, as an event loop
timer would, and records how much later than asked it woke up, while the collector
thread decodes and stores what a separate sender process posts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from harness import run_ingest  # noqa: E402

TIMER_S = 0.001


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    delays_ms: list[float] = []

    def tick() -> None:
        asked = time.perf_counter()
        time.sleep(TIMER_S)
        delays_ms.append((time.perf_counter() - asked - TIMER_S) * 1e3)

    idle: list[float] = []
    for _ in range(1000):
        asked = time.perf_counter()
        time.sleep(TIMER_S)
        idle.append((time.perf_counter() - asked - TIMER_S) * 1e3)
    run = run_ingest(args.spans, args.connections, persist=True, while_waiting=tick)
    cuts = statistics.quantiles(delays_ms, n=100)
    idle_cuts = statistics.quantiles(idle, n=100)
    print(f"responsiveness: 1 ms timer in the collector's process while ingesting "
          f"{run.spans} spans at {run.spans_per_second:,.0f} spans/s: "
          f"{len(delays_ms)} ticks, late by p50 {cuts[49]:.2f} ms, p99 {cuts[98]:.2f} ms, "
          f"max {max(delays_ms):.2f} ms (idle: p50 {idle_cuts[49]:.2f} ms, "
          f"p99 {idle_cuts[98]:.2f} ms)")


if __name__ == "__main__":
    main()
