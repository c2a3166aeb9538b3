"""Analysis time of the RLM engine for 1,000 and 10,000 traces of ~20 spans.

    python benchmarks/analysis.py [--sizes 1000 10000] [--no-model]

Traces come from the labelled corpus generator padded to about 20 spans each (ReAct,
plan-and-execute and hand-off runs with injected faults). Each size is analysed without
the model (model = "none") and with the bundled SmolLM2 model writing cluster narratives;
the model step is bounded by the number of clusters (at most engine.MAX_NARRATIVES calls),
not by the number of traces. Prints wall time, process CPU time and the engine's phases.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # evaluation/ (not in the wheel)

from evaluation.corpus import generate  # noqa: E402
from halo_nb.config import Settings  # noqa: E402
from halo_nb.rlm import analyze_frame  # noqa: E402


def run(spans, model: str) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = analyze_frame(spans, Settings(model=model))
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--no-model", action="store_true", help="skip the runs with the model")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    print(f"{'traces':>7} {'spans':>8} {'model':>8} {'wall s':>7} {'cpu s':>7} {'prepare':>8} "
          f"{'walk':>6} {'correlate':>9} {'model s':>7} {'clusters':>8} {'narratives':>10}")
    for size in args.sizes:
        corpus = generate(size, seed=7, pad_to=20)
        spans = corpus.spans
        models = ["none"] if args.no_model else ["none", "smollm2"]
        for model in models:
            wall, cpu, result = run(spans, model)
            t = result.timings
            narratives = result.hypotheses["narrative"].drop_nulls().len()
            print(f"{size:>7} {len(spans):>8} {model:>8} {wall:>7.2f} {cpu:>7.2f} "
                  f"{t['prepare_s']:>8.2f} {t['walk_s']:>6.2f} {t['correlate_s']:>9.2f} "
                  f"{t['model_s']:>7.2f} {len(result.clusters):>8} {narratives:>10}")
            if model != "none":
                print(f"{'':>7} model status: {result.model_status}")
    print("target: < 10 s for 10,000 traces without the model on a 2-core machine")


if __name__ == "__main__":
    main()
