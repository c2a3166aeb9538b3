"""``python -m halo_nb.examples.research_agent``: run a batch and send its traces to a running
halo_nb collector (a notebook's ``halo_nb.serve()`` or ``halo serve``)."""

from __future__ import annotations

import argparse
import socket
import sys
from urllib.parse import urlsplit

from .batch import DEFAULT_BATCH_SIZE, QUERIES, run_batch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m halo_nb.examples.research_agent",
                                     description=__doc__)
    parser.add_argument("--collector", default="http://127.0.0.1:4281",
                        help="the collector's base URL (default %(default)s)")
    parser.add_argument("--size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"questions to run, 1..{len(QUERIES)} (default %(default)s)")
    parser.add_argument("--variant", choices=("halo", "openinference"), default="halo",
                        help="trace with the halo_nb SDK or the OpenInference instrumentor")
    parser.add_argument("--reformulate", action="store_true",
                        help="apply the fix: reformulate queries that found nothing")
    parser.add_argument("--search-seed", type=int, default=7)
    args = parser.parse_args(argv)
    if not 1 <= args.size <= len(QUERIES):
        parser.error(f"--size: expected 1..{len(QUERIES)}, got {args.size}")
    url = urlsplit(args.collector)
    try:
        socket.create_connection((url.hostname, url.port or 80), timeout=2).close()
    except OSError as exc:
        print(f"no collector at {args.collector} ({exc.strerror or exc}): start one with "
              "'halo serve' or halo_nb.serve() in a notebook", file=sys.stderr)
        return 2
    report = run_batch(size=args.size, variant=args.variant,
                       reformulate_on_empty=args.reformulate, collector_url=args.collector,
                       search_seed=args.search_seed)
    for run in report.runs:
        searches = "; ".join(f"{s.query!r} ({s.result_count})" for s in run.searches)
        print(f"{run.trace_id}  {run.question}\n    searches: {searches}\n"
              f"    answer: {run.answer if run.error is None else 'ERROR ' + run.error}")
    print(report.summary())
    return 1 if any(run.error for run in report.runs) else 0


if __name__ == "__main__":
    sys.exit(main())
