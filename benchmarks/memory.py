"""Resident memory per stored span: decode realistic ~1 KB agent spans (OTLP protobuf,
batches of 512) into a SpanStore until it holds 1M, then compare RSS with before; then
what a caller holding a full ``spans()`` copy adds (the store keeps some columns in a
compact form, so a full copy is not free).

    python benchmarks/memory.py [--spans 1000000] [--persist]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from workload import request_bodies  # noqa: E402

from halo_nb.ingest.otlp import decode_protobuf  # noqa: E402
from halo_nb.storage.store import SpanStore  # noqa: E402

SETTLE_S = 10.0


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--persist", action="store_true", help="also write Parquet parts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = SpanStore(Path(folder) / "data" if args.persist else None)
        warm = decode_protobuf(next(request_bodies(512, seed=1))).frame
        store.spans(), store.traces(), warm.height
        gc.collect()
        before = rss_bytes()
        wire = 0
        start = time.perf_counter()
        for body in request_bodies(args.spans):
            wire += len(body)
            store.append_batches([decode_protobuf(body).span_batch()])
        store.flush()
        queryable = store.spans().height
        seconds = time.perf_counter() - start
        gc.collect()
        at_once = rss_bytes()
        time.sleep(SETTLE_S)  # freed pages return to the OS after the allocator's decay time
        after = rss_bytes()
        stored = len(store)
        assert queryable == stored
        # What a caller holding a full copy (``df = halo_nb.spans()``) adds on top.
        frame = store.spans()
        gc.collect()
        held = rss_bytes()
        print(f"memory: {stored:,} spans ({wire / stored:.0f} B/span protobuf) stored in "
              f"{seconds:.0f} s; RSS grew {(after - before) / 2**20:,.0f} MiB "
              f"= {(after - before) / stored:,.0f} B/span after {SETTLE_S:.0f} s "
              f"({(at_once - before) / stored:,.0f} B/span right away); a full spans() "
              f"frame held by the caller adds {(held - after) / stored:,.0f} B/span "
              f"(its estimated_size, views not counted: "
              f"{frame.estimated_size() / stored:,.0f} B/span); "
              f"{'persisted' if args.persist else 'memory only'}")
        store.close()


if __name__ == "__main__":
    main()
