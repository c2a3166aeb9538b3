"""Blame: which step of a failed trace is the decisive mistake.

A recursive descent from the failed root. At each layer the candidates are the
current span's own step (below the root) and each child subtree, judged whole; the
scorer (a conditional logit over ``signals.FEATURES``, coefficients fitted by
scripts/fit_blame.py and shipped in blame_weights.json) gives each a probability; the
descent goes into the winning child subtree and repeats there, or stops when the
span's own step wins, the subtree has no children, or the next layer would pass
``analysis_depth``. Features are computed per layer, so a subtree that holds an error
below and a claim above that ignores it is seen as one unit at the upper layer.

The rows of one trace: the candidates of the layer where the descent stopped, best
first, then the runners-up of the layers above; ``score`` is the probability of the
path to the candidate (the product of the choices above it and its own share).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from .graph import SpanNode, TraceView
from .signals import FEATURES, TraceSignals, Unit, layer_features

WEIGHTS_FILE = Path(__file__).with_name("blame_weights.json")
MAX_ROWS = 5  # blamed spans reported per trace


@dataclass(frozen=True)
class Scorer:
    """A linear score per unit, turned into probabilities within a layer (softmax)."""

    features: tuple[str, ...]
    weights: np.ndarray

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = x @ self.weights
        z = np.exp(z - z.max())
        return z / z.sum()


@cache
def default_scorer() -> Scorer:
    """The shipped coefficients (the features they were fitted on must be ours)."""
    data = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))
    weights = dict(zip(data["features"], data["weights"], strict=True))
    missing = [f for f in FEATURES if f not in weights]
    if missing:
        raise ValueError(f"{WEIGHTS_FILE.name} has no weight for {missing}; "
                         "run scripts/fit_blame.py")
    return Scorer(FEATURES, np.array([float(weights[f]) for f in FEATURES]))


def layer_units(trace: TraceView, node: SpanNode | None) -> list[Unit]:
    """The candidates below ``node`` (None: the trace's top level): its own step unless
    it is the root, then each child with its whole subtree, in start order."""
    if node is None:
        children = list(trace.top)
        if len(children) == 1 and trace.root is not None:  # the root stands for the run
            return layer_units(trace, children[0])
        own: list[Unit] = []
    else:
        children = trace.children(node)
        own = [] if node is trace.root else [Unit(node, [node], own=True)]
    return own + [Unit(c, [c, *trace.descendants(c)]) for c in children]


def can_descend(trace: TraceView, unit: Unit) -> bool:
    """Whether the descent may open this unit: it is a subtree with children whose
    layer is still within ``analysis_depth``."""
    return (not unit.own and unit.span.depth < trace.analysis_depth
            and bool(trace.children(unit.span)))


def blame_trace(trace: TraceView, scorer: Scorer | None = None) -> list[dict[str, Any]]:
    """Blame rows (BLAME_SCHEMA) for one failed trace, best first; [] for an empty trace."""
    scorer = scorer or default_scorer()
    signals = TraceSignals(trace)
    units = layer_units(trace, None)
    path_probability = 1.0
    descent: list[str] = []
    runners_up: list[tuple[Unit, float, dict[str, str]]] = []
    while units:
        x, evidence = layer_features(signals, units)
        p = scorer.probabilities(x)
        order = sorted(range(len(units)), key=lambda i: (-p[i], units[i].start_ns, i))
        best = units[order[0]]
        descent.append(best.span.span_id)
        if not can_descend(trace, best):
            ranked = [(units[i], path_probability * p[i], evidence[i]) for i in order]
            return _rows(trace, signals, ranked + runners_up[::-1], descent)
        runners_up.extend((units[i], path_probability * p[i], evidence[i]) for i in order[1:3])
        path_probability *= p[order[0]]
        units = layer_units(trace, best.span)
    return []


def _rows(trace: TraceView, signals: TraceSignals,
          ranked: list[tuple[Unit, float, dict[str, str]]], descent: list[str]
          ) -> list[dict[str, Any]]:
    rows = []
    seen: set[str] = set()
    for unit, score, evidence in ranked:
        span = unit.span
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        rows.append({
            "trace_id": trace.trace_id, "rank": len(rows) + 1, "span_id": span.span_id,
            "span_name": span.name, "agent": signals.agent(span), "layer": span.depth,
            "score": round(float(score), 4),
            "signals": [f for f in FEATURES if f in evidence],
            "reasons": [f"{f}: {evidence[f]}" for f in FEATURES if f in evidence],
            "descent": list(descent),
        })
        if len(rows) == MAX_ROWS:
            break
    return rows


def training_layers(trace: TraceView, gold_span_id: str
                    ) -> list[tuple[np.ndarray, int]]:
    """For fitting: the layers the descent must pass to reach ``gold_span_id``, each as
    (feature matrix, index of the unit that holds the gold span)."""
    signals = TraceSignals(trace)
    units = layer_units(trace, None)
    out: list[tuple[np.ndarray, int]] = []
    while units:
        target = next((i for i, u in enumerate(units)
                       if any(s.span_id == gold_span_id for s in u.spans)), None)
        if target is None:
            return out
        x, _ = layer_features(signals, units)
        out.append((x, target))
        chosen = units[target]
        if not can_descend(trace, chosen):  # the gold step itself, or its layer limit
            return out
        units = layer_units(trace, chosen.span)
    return out
