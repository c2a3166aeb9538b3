"""Cross-trace correlation: findings -> causal chains per trace -> failure clusters.

Within a trace, findings are linked when they sit on the same span or one names the
span of another in ``follows`` (a retry follows the empty call it repeats). Each linked
group is a causal chain: its distinct signatures ordered so that a finding comes after
what it follows, else by span start. Traces sharing a chain form a cluster. Findings of
severity "info" take no part. A cluster needs MIN_CLUSTER_TRACES traces.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .registry import SEVERITIES

MIN_CLUSTER_TRACES = 2
EXAMPLES = 5
EVIDENCE_SPANS_MAX = 200
_RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass
class Cluster:
    chain: tuple[str, ...]
    trace_ids: list[str] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    cluster_id: str = ""


def chains_of_trace(rows: list[dict[str, Any]]) -> list[tuple[tuple[str, ...], list[dict]]]:
    """The causal chains of one trace's findings: (signatures in causal order, findings)."""
    rows = [r for r in rows if r["severity"] != "info"]
    if not rows:
        return []
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    on_span: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        on_span[row["span_id"]].append(i)
    for i, row in enumerate(rows):
        for span_id in (row["span_id"], *row["follows"]):
            for j in on_span.get(span_id, ()):
                parent[find(i)] = find(j)
    order = _causal_order(rows, on_span)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in sorted(range(len(rows)), key=lambda i: order[i]):
        groups[find(i)].append(i)
    ordered = sorted(groups.values(), key=lambda members: order[members[0]])
    return [(tuple(dict.fromkeys(rows[i]["signature"] for i in members)),
             [rows[i] for i in members]) for members in ordered]


def _causal_order(rows: list[dict[str, Any]], on_span: dict[str, list[int]]) -> list[tuple]:
    """Sort key per finding: (signal time, follow depth, start, detector): a finding is
    never earlier than a finding it follows."""
    time = [r["start_ns"] for r in rows]
    depth = [0] * len(rows)
    for _ in range(len(rows)):
        changed = False
        for i, row in enumerate(rows):
            for span_id in row["follows"]:
                for j in on_span.get(span_id, ()):
                    if j != i and (time[j], depth[j] + 1) > (time[i], depth[i]):
                        time[i], depth[i] = max(time[i], time[j]), depth[j] + 1
                        changed = True
        if not changed:
            break
    return [(time[i], depth[i], rows[i]["start_ns"], rows[i]["detector"], rows[i]["span_id"])
            for i in range(len(rows))]


def cluster_traces(rows_by_trace: dict[str, list[dict[str, Any]]]) -> tuple[
        list[Cluster], dict[str, str | None]]:
    """Clusters (ordered by trace count desc, then severity desc, then chain) with ids
    C1..Cn, and each trace's primary cluster (its earliest chain that is a cluster)."""
    by_chain: dict[tuple[str, ...], Cluster] = {}
    trace_chains: dict[str, list[tuple[str, ...]]] = {}
    for trace_id in sorted(rows_by_trace):
        chains = chains_of_trace(rows_by_trace[trace_id])
        trace_chains[trace_id] = [c for c, _ in chains]
        for chain, members in chains:
            cluster = by_chain.setdefault(chain, Cluster(chain))
            if not cluster.trace_ids or cluster.trace_ids[-1] != trace_id:
                cluster.trace_ids.append(trace_id)
            cluster.findings.extend(members)
    clusters = [c for c in by_chain.values() if len(c.trace_ids) >= MIN_CLUSTER_TRACES]
    clusters.sort(key=lambda c: (-len(c.trace_ids), -max_severity_rank(c.findings), c.chain))
    for n, cluster in enumerate(clusters, 1):
        cluster.cluster_id = f"C{n}"
    ids = {c.chain: c.cluster_id for c in clusters}
    for cluster in clusters:
        for finding in cluster.findings:
            finding["cluster_id"] = cluster.cluster_id
    primary = {t: next((ids[c] for c in chains if c in ids), None)
               for t, chains in trace_chains.items()}
    return clusters, primary


def max_severity_rank(findings: list[dict[str, Any]]) -> int:
    return max((_RANK[f["severity"]] for f in findings), default=0)


def headline(cluster: Cluster) -> dict[str, Any]:
    """The finding that names the cluster: the most severe signature, the later one on a tie
    (the consequence the user sees)."""
    position = {sig: i for i, sig in enumerate(cluster.chain)}
    return max(cluster.findings, key=lambda f: (_RANK[f["severity"]], position[f["signature"]],
                                                f["trace_id"], f["span_id"]))


def cluster_row(cluster: Cluster, analysed: int, failed: set[str],
                base_failure_rate: float) -> dict[str, Any]:
    head = headline(cluster)
    n = len(cluster.trace_ids)
    failed_n = sum(1 for t in cluster.trace_ids if t in failed)
    lift = (failed_n / n) / base_failure_rate if base_failure_rate > 0 else None
    spans = list(dict.fromkeys(f["span_id"] for f in sorted(
        cluster.findings, key=lambda f: (f["trace_id"], f["start_ns"], f["span_id"]))))
    return {
        "cluster_id": cluster.cluster_id,
        "signature": " -> ".join(cluster.chain),
        "detector": head["detector"],
        "span_path": head["span_path"],
        "severity": SEVERITIES[max_severity_rank(cluster.findings)],
        "trace_count": n,
        "prevalence": n / analysed if analysed else 0.0,
        "failed_trace_count": failed_n,
        "lift": None if lift is None else round(lift, 4),
        "causal_chain": list(cluster.chain),
        "earliest_signal": cluster.chain[0],
        "detectors": list(dict.fromkeys(sig.split("|", 1)[0] for sig in cluster.chain)),
        "finding_count": len(cluster.findings),
        "trace_ids": list(cluster.trace_ids),
        "example_trace_ids": list(cluster.trace_ids[:EXAMPLES]),
        "evidence_span_ids": spans[:EVIDENCE_SPANS_MAX],
    }
