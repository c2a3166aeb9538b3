"""Peak memory and time of importing a large snapshot file.

    python benchmarks/snapshot_import.py [--traces 40] [--spans-per-trace 1500]

Exports a snapshot of ``traces`` traces whose spans carry 1.5 KB of input and 1.5 KB of
output each (about 190 MiB at the defaults, under the 256 MiB max_snapshot_bytes cap),
then imports it into an empty in-memory store in a fresh process and prints the file
size, the import time and the importing process's peak RSS, before and after.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from otlp_factory import new_trace_id, protobuf_body, span  # noqa: E402
from proc_status import status_of  # noqa: E402

from halo_nb.ingest.otlp import decode_protobuf  # noqa: E402
from halo_nb.interchange.snapshot import export_snapshot  # noqa: E402
from halo_nb.storage.store import SpanStore  # noqa: E402

# The importing process: ready once its modules are loaded, then imports the file named on
# stdin, answers, and waits for stdin to close (so its peak can be read meanwhile).
IMPORT = """
import sys, time
from halo_nb.interchange.snapshot import import_snapshot
from halo_nb.storage.store import SpanStore
print("ready", flush=True)
path = sys.stdin.readline().strip()
started = time.perf_counter()
result = import_snapshot(SpanStore(None), path)
print(result.spans_added, time.perf_counter() - started, flush=True)
sys.stdin.read()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=40)
    parser.add_argument("--spans-per-trace", type=int, default=1500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="halo-snapshot-") as tmp:
        path = Path(tmp) / "large.json"
        store = SpanStore(None)
        for _ in range(args.traces):
            trace_id = new_trace_id()
            spans = [span(f"step {n}", trace_id=trace_id,
                          attrs={"input.value": "q" * 1500, "output.value": "a" * 1500})
                     for n in range(args.spans_per_trace)]
            store.append(decode_protobuf(protobuf_body(spans)).frame)
        export_snapshot(store, store.trace_ids(), path)
        store.close()
        size = path.stat().st_size / 2**20
        child = subprocess.Popen([sys.executable, "-c", IMPORT], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdin is not None and child.stdout is not None
        child.stdout.readline()
        before = status_of(child.pid)["VmHWM"] // 1024
        child.stdin.write(f"{path}\n")
        child.stdin.flush()
        out = child.stdout.readline().split()
        peak = status_of(child.pid)["VmHWM"] // 1024
        child.stdin.close()
        if child.wait(timeout=60):
            raise SystemExit("the import failed")
        spans, elapsed = int(out[0]), float(out[1])
    print(f"snapshot: {size:,.0f} MiB, {spans:,} spans in {args.traces} traces")
    print(f"import: {elapsed:.1f} s; peak RSS {peak:,} MiB ({before:,} MiB before), "
          f"{(peak - before) / size:.1f}x the file")


if __name__ == "__main__":
    main()
