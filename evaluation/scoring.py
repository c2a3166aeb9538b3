"""Scoring an analysis against a labelled corpus: per-detector precision and recall,
clean-trace severities, cluster purity and the adjusted Rand index (ARI)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from math import comb

import polars as pl

from halo_nb.rlm.result import AnalysisResult

from .corpus import CLEAN, Corpus


@dataclass
class DetectorScore:
    detector: str
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        truth = self.true_positives + self.false_negatives
        return self.true_positives / truth if truth else 1.0


@dataclass
class Score:
    detectors: list[DetectorScore]
    clean_traces: int
    clean_traces_above_info: int
    purity: float
    ari: float
    clusters: int
    scenarios: int
    mistakes: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)


def adjusted_rand_index(truth: list[str], predicted: list[str]) -> float:
    """ARI of two labelings of the same items (Hubert and Arabie, 1985)."""
    if len(truth) != len(predicted):
        raise ValueError("labelings differ in length")
    n = len(truth)
    if n < 2:
        return 1.0
    pairs = sum(comb(c, 2) for c in Counter(zip(truth, predicted, strict=True)).values())
    rows = sum(comb(c, 2) for c in Counter(truth).values())
    cols = sum(comb(c, 2) for c in Counter(predicted).values())
    expected = rows * cols / comb(n, 2)
    maximum = (rows + cols) / 2
    if maximum == expected:
        return 1.0
    return (pairs - expected) / (maximum - expected)


def purity(truth: list[str], predicted: list[str], ignore: str | None = None) -> float:
    """Share of clustered items whose cluster's majority truth label is theirs."""
    by_cluster: dict[str, Counter[str]] = {}
    for t, p in zip(truth, predicted, strict=True):
        if p != ignore:
            by_cluster.setdefault(p, Counter())[t] += 1
    total = sum(sum(c.values()) for c in by_cluster.values())
    return sum(c.most_common(1)[0][1] for c in by_cluster.values()) / total if total else 1.0


def score(corpus: Corpus, result: AnalysisResult) -> Score:
    found = {(t, s, d) for t, s, d in result.findings.select(
        "trace_id", "span_id", "detector").iter_rows()}
    names = sorted({d for _, _, d in corpus.labels} | {d for _, _, d in found})
    detectors, mistakes = [], {}
    for name in names:
        truth = {x for x in corpus.labels if x[2] == name}
        got = {x for x in found if x[2] == name}
        detectors.append(DetectorScore(name, len(truth & got), len(got - truth),
                                       len(truth - got)))
        if got ^ truth:
            mistakes[name] = sorted(got ^ truth)
    clean = [t for t, label in corpus.truth.items() if label == CLEAN]
    noisy = set(result.findings.filter(pl.col("severity") > "info")["trace_id"].to_list())
    assigned = dict(result.assignments.select("trace_id", "cluster_id").iter_rows())
    with_findings = set(result.findings["trace_id"].to_list())
    ids = corpus.trace_ids
    truth_labels = [corpus.truth[t] for t in ids]
    predicted = [assigned.get(t) or (f"unclustered:{t}" if t in with_findings and
                                     corpus.truth[t] != CLEAN else "none") for t in ids]
    return Score(
        detectors=detectors, clean_traces=len(clean),
        clean_traces_above_info=len([t for t in clean if t in noisy]),
        purity=purity(truth_labels, predicted, ignore="none"),
        ari=adjusted_rand_index(truth_labels, predicted),
        clusters=len(result.clusters),
        scenarios=len({label for label in truth_labels if label != CLEAN}),
        mistakes=mistakes)


def report(s: Score) -> str:
    lines = [f"{'detector':<24}{'precision':>10}{'recall':>8}{'tp':>6}{'fp':>5}{'fn':>5}"]
    for d in s.detectors:
        lines.append(f"{d.detector:<24}{d.precision:>10.3f}{d.recall:>8.3f}"
                     f"{d.true_positives:>6}{d.false_positives:>5}{d.false_negatives:>5}")
    lines += [f"clean traces: {s.clean_traces}, with a finding above info: "
              f"{s.clean_traces_above_info}",
              f"clusters: {s.clusters} (injected scenarios: {s.scenarios}); "
              f"purity {s.purity:.3f}; ARI {s.ari:.3f}"]
    return "\n".join(lines)
