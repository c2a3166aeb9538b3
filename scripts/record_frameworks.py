"""Regenerate the framework corpus (tests/fixtures/frameworks/): run each instrumentation
library's agent against the local mock model and save the spans it exports.

    bash scripts/install_frameworks.sh        # once: .venv-frameworks and the Node project
    .venv/bin/python scripts/record_frameworks.py [--library NAME ...] [--runs N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.frameworks.recording import BY_NAME, LIBRARIES, record, write  # noqa: E402
from tests.frameworks.scenarios import SCRIPTS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", action="append", choices=sorted(BY_NAME),
                        help="record only these (default: all)")
    parser.add_argument("--scenario", action="append", choices=sorted(SCRIPTS),
                        help="record only these scenarios (default: all)")
    parser.add_argument("--runs", type=int, default=5, help="runs per scenario")
    args = parser.parse_args()
    libraries = [BY_NAME[n] for n in args.library] if args.library else list(LIBRARIES)
    scenarios = tuple(args.scenario or SCRIPTS)
    for library in libraries:
        started = time.perf_counter()
        recorded = record(library, scenarios, args.runs)
        paths = write(library, recorded)
        spans = sum(len(s.get("spans", [])) for request in recorded.values()
                    for rs in request["resourceSpans"] for s in rs.get("scopeSpans", []))
        print(f"{library.name:20s} {len(paths)} scenarios, {spans} spans, "
              f"{time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
