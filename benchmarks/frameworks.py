"""The engine on real instrumentation libraries' traces (tests/fixtures/frameworks/,
recorded by scripts/record_frameworks.py from each library run against a local mock
model). Prints one row per library: healthy runs' findings of medium or above and
clusters (target 0 and 0), and for each injected fault the faulty runs caught by the
expected detector; then the libraries' versions.

    .venv/bin/python benchmarks/frameworks.py [--details]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.frameworks.evaluate import evaluate, libraries, versions  # noqa: E402
from tests.frameworks.scenarios import EXPECTED  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--details", action="store_true",
                        help="list the healthy runs' findings and the missed detectors")
    args = parser.parse_args()
    notes = versions()
    faults = list(EXPECTED)
    header = ["library", "healthy runs", "findings >= medium", "clusters",
              *faults, "faults caught"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    total_caught = total_faults = 0
    for name in libraries():
        report = evaluate(name)
        cells = [notes.get(name, {}).get("title", name), str(report.healthy_traces),
                 str(len(report.healthy_findings)), str(report.healthy_clusters)]
        for fault in faults:
            runs, hit = report.caught.get(fault, (0, 0))
            cells.append(f"{hit}/{runs}" if runs else "n/a")
        expressible = sum(1 for runs, _ in report.caught.values() if runs)
        total_caught += report.faults_caught
        total_faults += expressible
        cells.append(f"{report.faults_caught}/{expressible}")
        print("| " + " | ".join(cells) + " |")
        if args.details:
            for finding in report.healthy_findings:
                print(f"    healthy: {finding['detector']} ({finding['severity']}) "
                      f"{finding['message']}")
            for scenario, missed in report.missed.items():
                print(f"    {scenario}: missed {', '.join(missed)}")
    print(f"\nfaults caught in every faulty run: {total_caught}/{total_faults} "
          "(each cell: faulty runs caught by the expected detector / faulty runs)")
    print("\nversions:")
    for note in sorted(notes.values(), key=lambda n: n["title"]):
        packages = ", ".join(f"{p} {v}" for p, v in note["packages"].items())
        print(f"  {note['title']}: {packages}")


if __name__ == "__main__":
    main()
