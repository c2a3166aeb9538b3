"""``python -m halo_nb.examples.quickstart``: the quickstart notebook's path in a terminal.

Starts the collector in this process, runs the sample research agent on the bundled
local model (traces kept under the output folder), analyses the traces, prints the
failure clusters with their hypotheses, and writes the dashboard as a self-contained
HTML report plus a snapshot of the retry-loop traces into the output folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl

import halo_nb
from halo_nb.examples.research_agent import run_batch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m halo_nb.examples.quickstart",
                                     description=__doc__)
    parser.add_argument("--runs", type=int, default=16, help="agent runs (default %(default)s)")
    parser.add_argument("--output", type=Path, default=Path("quickstart"),
                        help="folder for report.html and the snapshot (default %(default)s)")
    args = parser.parse_args(argv)

    halo_nb.configure(storage_path=args.output / "data")
    collector = halo_nb.serve()
    print(f"collector listening on {collector.url}; storage {halo_nb.settings().storage_path}")
    report = run_batch(size=args.runs)
    print(report.summary())

    result = halo_nb.analyze()
    print()
    print(result.summary())
    for hypothesis in result.hypotheses.iter_rows(named=True):
        print(f"\n{hypothesis['cluster_id']}: {hypothesis['hypothesis']}")
        print(f"  suggested fix: {hypothesis['suggested_fix']}")
        print(f"  confidence {hypothesis['confidence']:.0%}; evidence spans: "
              f"{len(hypothesis['evidence_span_ids'])}")
        if hypothesis["narrative"]:
            print(f"  model narrative: {hypothesis['narrative']}")

    args.output.mkdir(parents=True, exist_ok=True)
    report_path = halo_nb.report(args.output / "report.html")
    print(f"\nreport: {report_path}")
    retry = result.clusters.filter(pl.col("detector") == "retry_loop")
    if retry.height:
        snapshot = halo_nb.export_snapshot(retry["trace_ids"][0].to_list(),
                                           args.output / "retry-loop.json")
        print(f"snapshot of the retry-loop traces: {snapshot}")
    print("explore interactively: .venv/bin/jupyter lab notebooks/quickstart.ipynb")
    halo_nb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
