"""Evaluate the RLM engine against generated, labelled trace corpora.

    python benchmarks/eval_rlm.py [--traces 600] [--seeds 0 1 2] [--depth 3]

For each seed: a corpus of ReAct, plan-and-execute and multi-agent hand-off runs in the
OpenInference, OTel GenAI and halo SDK conventions (some without content capture), with
one injected fault per faulty run at a known span (halo_nb/rlm/corpus.py). Prints
per-detector precision and recall over all seeds, how many clean traces got a finding
above "info", cluster purity and the adjusted Rand index of the trace clusters against
the injected scenarios (halo_nb/rlm/scoring.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # evaluation/ (not in the wheel)

from evaluation.corpus import generate  # noqa: E402
from evaluation.scoring import DetectorScore, score  # noqa: E402
from halo_nb.config import Settings  # noqa: E402
from halo_nb.rlm import analyze_frame  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traces", type=int, default=600)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--depth", type=int, default=3, help="analysis_depth")
    args = parser.parse_args()
    totals: dict[str, list[int]] = {}
    print(f"{'seed':>4} {'traces':>6} {'spans':>7} {'clean':>5} {'noisy':>5} {'clusters':>8} "
          f"{'scenarios':>9} {'purity':>6} {'ARI':>6} {'seconds':>7}")
    for seed in args.seeds:
        corpus = generate(args.traces, seed=seed)
        started = time.perf_counter()
        result = analyze_frame(corpus.spans, Settings(model="none", analysis_depth=args.depth))
        elapsed = time.perf_counter() - started
        s = score(corpus, result)
        for d in s.detectors:
            counts = totals.setdefault(d.detector, [0, 0, 0])
            counts[0] += d.true_positives
            counts[1] += d.false_positives
            counts[2] += d.false_negatives
        print(f"{seed:>4} {args.traces:>6} {len(corpus.spans):>7} {s.clean_traces:>5} "
              f"{s.clean_traces_above_info:>5} {s.clusters:>8} {s.scenarios:>9} "
              f"{s.purity:>6.3f} {s.ari:>6.3f} {elapsed:>7.2f}")
        if result.detector_errors:
            print("  detector errors:", *result.detector_errors[:5], sep="\n    ")
    print(f"\n{'detector':<24}{'precision':>10}{'recall':>8}{'tp':>6}{'fp':>5}{'fn':>5}")
    for name in sorted(totals):
        d = DetectorScore(name, *totals[name])
        print(f"{name:<24}{d.precision:>10.3f}{d.recall:>8.3f}{d.true_positives:>6}"
              f"{d.false_positives:>5}{d.false_negatives:>5}")
    print("\n'noisy' = clean traces with a finding above severity info (target 0); targets: "
          "precision and recall >= 0.95 per detector, ARI >= 0.9.")


if __name__ == "__main__":
    main()
