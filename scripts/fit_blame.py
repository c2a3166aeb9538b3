"""Fit blame's scorer on labelled failed runs and write halo_nb/rlm/blame_weights.json.

    python scripts/fit_blame.py --traces /tmp/ww/traces.otlp.jsonl --labels /tmp/ww/labels.jsonl

The scorer is a conditional logit: at each layer of the descent, the unit holding the
labelled span should get the highest probability among its siblings. Fitted by Newton's
method with an L2 penalty (deterministic). Reports k-fold cross-validated figures
(each fold's traces are blamed by coefficients fitted on the other folds) before
fitting on everything: first with folds taken in trace-id order (the figure written to
the JSON), then the mean and range over ``--repeats`` seeded shuffles of the fold
assignment, since with ~100 runs one assignment can move a figure by several points.
A feature that never fires in the data keeps its prior weight (recorded as such in the
JSON): the data say nothing about it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from eval_blame import load_store, read_labels, score, step_index  # noqa: E402

from halo_nb.config import Settings  # noqa: E402
from halo_nb.rlm.blame import WEIGHTS_FILE, Scorer, blame_trace, training_layers  # noqa: E402
from halo_nb.rlm.engine import trace_views  # noqa: E402
from halo_nb.rlm.graph import TraceView  # noqa: E402
from halo_nb.rlm.signals import FEATURES  # noqa: E402
from halo_nb.storage.store import SpanStore  # noqa: E402

# Weights for signals the development set never shows (set by judgement, not fitted).
PRIORS = {"stall_reported": 1.0, "contains_error": 1.0, "invents": 1.0, "gives_up": 0.5,
          "claim_after_error": 1.0}
Layer = tuple[np.ndarray, int]


def fit(layers: list[Layer], l2: float, fixed: dict[int, float], iterations: int = 50
        ) -> np.ndarray:
    """Conditional-logit weights maximising sum(log p[target]) - l2/2 |w|^2; the
    coefficients in ``fixed`` (index -> value) are held at their values."""
    k = len(FEATURES)
    w = np.zeros(k)
    for i, v in fixed.items():
        w[i] = v
    free = np.array([i not in fixed for i in range(k)])
    for _ in range(iterations):
        grad = -l2 * w
        hess = -l2 * np.eye(k)
        for x, t in layers:
            z = x @ w
            p = np.exp(z - z.max())
            p /= p.sum()
            mean = p @ x
            grad += x[t] - mean
            hess -= (x * p[:, None]).T @ x - np.outer(mean, mean)
        g, h = grad[free], hess[np.ix_(free, free)]
        step = np.linalg.solve(h, g)
        w[free] -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def fixed_weights(layers: list[Layer]) -> dict[int, float]:
    """Features that never vary within a layer keep their prior (0 without one)."""
    varies = np.zeros(len(FEATURES), dtype=bool)
    for x, _ in layers:
        varies |= x.max(axis=0) > x.min(axis=0)
    return {i: PRIORS.get(f, 0.0) for i, f in enumerate(FEATURES) if not varies[i]}


def cross_validate(traces: list[TraceView], layers: dict[str, list[Layer]], folds: int,
                   l2: float) -> dict[str, dict]:
    """Each trace's prediction by coefficients fitted on the folds it is not in (fold i
    holds traces i, i + folds, ... of ``traces`` as ordered)."""
    predicted: dict[str, dict] = {}
    for i in range(folds):
        held = traces[i::folds]
        held_ids = {t.trace_id for t in held}
        train = [layer for tid, ls in layers.items() if tid not in held_ids for layer in ls]
        scorer = Scorer(FEATURES, fit(train, l2, fixed_weights(train)))
        predicted.update({t.trace_id: predict(t, scorer) for t in held})
    return predicted


def predict(trace: TraceView, scorer: Scorer) -> dict:
    rows = blame_trace(trace, scorer)
    if not rows:
        return {}
    span = trace.by_id[rows[0]["span_id"]]
    return {"agent": rows[0]["agent"], "span_id": span.span_id,
            "step_index": step_index(trace, span)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traces", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--l2", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=10,
                        help="seeded shuffles of the fold assignment to average over")
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    parser.add_argument("--dry-run", action="store_true", help="report, write nothing")
    args = parser.parse_args()
    settings = Settings(model="none")
    with tempfile.TemporaryDirectory(prefix="halo-fit-") as tmp, SpanStore(tmp) as store:
        load_store(args.traces, store)
        spans = store.spans()
    gold = read_labels(args.labels)
    traces = sorted((t for t in trace_views(spans, settings) if t.trace_id in gold),
                    key=lambda t: t.trace_id)
    layers = {t.trace_id: training_layers(t, gold[t.trace_id]["span_id"]) for t in traces}
    labelled = {t.trace_id: gold[t.trace_id] for t in traces}
    cv = score(labelled, cross_validate(traces, layers, args.folds, args.l2))
    repeats = [score(labelled, cross_validate(
        [traces[i] for i in np.random.default_rng(seed).permutation(len(traces))],
        layers, args.folds, args.l2)) for seed in range(args.repeats)]
    everything = [layer for ls in layers.values() for layer in ls]
    fixed = fixed_weights(everything)
    weights = fit(everything, args.l2, fixed)
    print(f"{len(traces)} labelled traces, {len(everything)} layers, {args.folds}-fold CV: "
          f"agent {cv['agent']:.1%}, step {cv['step']:.1%}, step±2 {cv['step_pm2']:.1%}")
    if repeats:
        print(f"  over {len(repeats)} shuffled fold assignments: " + ", ".join(
            f"{name} {np.mean(values):.1%} ({min(values):.1%}-{max(values):.1%})"
            for name, values in ((k, [r[k] for r in repeats])
                                 for k in ("agent", "step", "step_pm2"))))
    for name, value in zip(FEATURES, weights, strict=True):
        note = " (prior: never varies in the data)" if FEATURES.index(name) in fixed else ""
        print(f"  {name:20} {value:+.3f}{note}")
    if args.dry_run:
        return 0
    payload = {
        "features": list(FEATURES),
        "weights": [round(float(v), 4) for v in weights],
        "priors_not_fitted": [FEATURES[i] for i in sorted(fixed)],
        "model": "conditional logit over the units of each descent layer, L2 "
                 f"{args.l2}, Newton's method",
        "fitted_on": f"{args.traces.name} + {args.labels.name}: {len(traces)} labelled "
                     "failed runs",
        "cross_validated": {"folds": args.folds, **{k: round(v, 4) for k, v in cv.items()}},
        "cross_validated_shuffled": {
            "repeats": len(repeats),
            **{f"{k}_mean": round(float(np.mean([r[k] for r in repeats])), 4)
               for k in ("agent", "step", "step_pm2")}} if repeats else None,
        "reproduce": "python scripts/fit_blame.py --traces T.otlp.jsonl --labels L.jsonl",
    }
    args.out.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
