"""The kernel's side of the trace list's search at a million spans: copying the spans out
of the store and matching a text in every span's name, tool, arguments, result, input,
output and status message.

    python benchmarks/trace_search.py [--traces 10000] [--copies 5] [--runs 3]

Spans come from the labelled corpus generator (~20 spans a trace), stored ``copies``
times under new trace ids (about 1M spans at the defaults).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # evaluation/ (not in the wheel)

from evaluation.corpus import generate  # noqa: E402
from halo_nb.storage.store import SpanStore  # noqa: E402
from halo_nb.widgets.search import matching_traces  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=10_000)
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--text", default="timeout")
    args = parser.parse_args()
    spans = generate(args.traces, seed=1, pad_to=20).spans
    store = SpanStore(None)
    for copy in range(args.copies):
        store.append(spans.with_columns(pl.col("trace_id") + str(copy)))
    store.flush()
    print(f"{len(store):,} spans in {len(store.trace_ids()):,} traces")
    for _ in range(args.runs):
        started = time.perf_counter()
        frame = store.spans()
        copied = time.perf_counter()
        hits = matching_traces(frame, args.text)
        done = time.perf_counter()
        print(f"spans() {copied - started:.3f} s, search {done - copied:.3f} s, "
              f"{len(hits):,} traces match {args.text!r}")
    store.close()


if __name__ == "__main__":
    main()
