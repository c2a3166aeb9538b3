"""Sustained OTLP/HTTP protobuf ingest: spans per second from a separate process, in
batches of 512 realistic agent spans (~1 KB each), until all are queryable.

    python benchmarks/ingest.py [--spans 200000] [--connections 4] [--memory-only]
                                [--spans-per-trace 16] [--durability sync]

With --durability sync the collector answers 200 only after a request's spans are
written and fsynced (a group commit across concurrent requests), so the sender's last
200 is the moment every span is on disk: that rate is the sync figure.

With --spans-per-trace above 512 every request holds spans of traces already stored, so
each one goes through the duplicate check's key lookups.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from harness import run_ingest  # noqa: E402
from workload import SPANS_PER_TRACE  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--memory-only", action="store_true", help="no Parquet persistence")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--spans-per-trace", type=int, default=SPANS_PER_TRACE)
    parser.add_argument("--durability", choices=("async", "sync"), default="async")
    args = parser.parse_args()
    for _ in range(args.runs):
        run = run_ingest(args.spans, args.connections, persist=not args.memory_only,
                         spans_per_trace=args.spans_per_trace, durability=args.durability)
        durable = (f"; on disk (Parquet) after {run.durable_seconds:.2f} s = "
                   f"{run.spans / run.durable_seconds:,.0f} spans/s" if run.durable_seconds else "")
        if args.durability == "sync":
            durable += (f"; durability sync: every 200 received (each span fsynced) after "
                        f"{run.sender_seconds:.2f} s = {run.spans / run.sender_seconds:,.0f} "
                        f"spans/s")
        print(f"ingest: {run.spans} spans ({run.body_bytes / run.spans:.0f} B/span protobuf, "
              f"batches of 512, {args.spans_per_trace} a trace, {args.connections} connections, "
              f"{'memory only' if args.memory_only else 'persisted'}) queryable in "
              f"{run.seconds:.2f} s = {run.spans_per_second:,.0f} spans/s "
              f"({run.body_bytes / run.seconds / 1e6:.1f} MB/s){durable}; CPU: collector "
              f"process {run.cpu_seconds / run.spans * 1e6:.1f} us/span (all threads), "
              f"sender {run.sender_cpu_seconds / run.spans * 1e6:.1f} us/span")


if __name__ == "__main__":
    main()
