"""How long a batch of the sample research agent takes on the bundled local model
(SmolLM2-135M through llama.cpp's server, on CPU): model-server start-up, then seconds
per batch, per trace and per LLM call, for the baseline and for the fixed agent.

    python benchmarks/research_agent.py [--size 16] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import halo_nb
from halo_nb.examples.research_agent import LocalModelServer, run_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None,
                        help="llama.cpp threads (default: half the cores)")
    args = parser.parse_args()
    halo_nb.configure(storage_path=tempfile.mkdtemp(prefix="halo-agent-bench-"), persist=False,
                      port=0)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    started = time.perf_counter()
    with LocalModelServer(n_threads=args.threads) as server:
        print(f"model server ready in {time.perf_counter() - started:.1f}s "
              f"({server.n_threads} threads)")
        for fix in (False, True):
            report = run_batch(size=args.size, endpoint=server.endpoint,
                               reformulate_on_empty=fix)
            calls = sum(run.llm_calls for run in report.runs)
            label = "fixed   " if fix else "baseline"
            print(f"{label} {len(report.runs)} traces in {report.seconds:6.1f}s: "
                  f"{report.seconds / len(report.runs):5.2f} s/trace, {calls} LLM calls, "
                  f"{report.seconds / calls:5.2f} s/call; {report.summary().split(': ', 1)[1]}")


if __name__ == "__main__":
    main()
