"""Blame measured on labelled runs: which agent and which step broke each run.

    python benchmarks/eval_blame.py --traces T.otlp.jsonl --labels L.jsonl [--out predictions.jsonl]
    python benchmarks/eval_blame.py --traces T.otlp.jsonl          # successful runs: false alarms

Imports the traces (one OTLP/JSON ExportTraceServiceRequest per line) into a temporary
span store, marks the labelled traces failed (as a user who knows which runs failed
would), runs the analysis without the language model, writes one prediction per trace
(the top-ranked span's id and agent, in score.py's format) and prints agent accuracy,
step accuracy and step within 2 beside trivial baselines computed on the same spans.
Without --labels it prints the share of traces with a finding of medium or above.

Step indices: a span's ``bench.step_index`` when the converter wrote one (it exists so
a scorer can translate a span into a step; the engine never reads it), else the span's
place among the trace's non-root spans in start order.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import polars as pl

from halo_nb.config import Settings
from halo_nb.ingest.otlp import decode_json
from halo_nb.rlm import analyze_frame
from halo_nb.rlm.engine import trace_views
from halo_nb.rlm.graph import SpanNode, TraceView
from halo_nb.rlm.signals import agent_name
from halo_nb.storage.store import SpanStore

STEP_ATTRIBUTE = "bench.step_index"
MEDIUM_OR_ABOVE = ("medium", "high", "critical")


def load_store(path: Path, store: SpanStore) -> int:
    """Append every request of an OTLP/JSON lines file to ``store``; returns spans added."""
    added = 0
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            decoded = decode_json(line, origin=f"{path.name}:{number}")
            added += store.append(decoded.frame)
    return added


def read_labels(path: Path) -> dict[str, dict[str, Any]]:
    """trace_id -> (agent, step_index, span_id) of the decisive mistake, for Who&When
    labels (gold_*) and AgentRx labels (root: {...})."""
    gold = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        root = row.get("root") if "root" in row else None
        if "root" in row:
            root = root or {}
            gold[row["trace_id"]] = {"agent": root.get("agent"), "step": root.get("step_index"),
                                     "span_id": root.get("span_id")}
        else:
            gold[row["trace_id"]] = {"agent": row.get("gold_agent"),
                                     "step": row.get("gold_step_index"),
                                     "span_id": row.get("gold_span_id")}
    return gold


def step_index(trace: TraceView, span: SpanNode) -> int | None:
    value = span.attrs.get(STEP_ATTRIBUTE)
    if isinstance(value, int):
        return value
    steps = [s for s in trace.spans if s is not trace.root]
    return steps.index(span) if span in steps else None


def last_step(trace: TraceView) -> SpanNode | None:
    """Baseline: blame the last step."""
    steps = [s for s in trace.spans if s is not trace.root]
    return steps[-1] if steps else None


def before_first_failure(trace: TraceView) -> SpanNode | None:
    """Baseline: the decision (a non-tool step) just before the first failing tool run;
    the last step when no tool run failed."""
    steps = [s for s in trace.spans if s is not trace.root]
    for i, s in enumerate(steps):
        if s.kind == "tool" and s.failed:
            before = [p for p in steps[:i] if p.kind != "tool"]
            return before[-1] if before else s
    return last_step(trace)


def first_decision(trace: TraceView) -> SpanNode | None:
    """Baseline: the first step that is not a tool run."""
    return next((s for s in trace.spans if s is not trace.root and s.kind != "tool"), None)


BASELINES: dict[str, Callable[[TraceView], SpanNode | None]] = {
    "last step": last_step,
    "step before first failing tool run": before_first_failure,
    "first decision": first_decision,
}


def predictions(spans: pl.DataFrame, blame: pl.DataFrame, settings: Settings,
                trace_ids: Iterable[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per method (the engine, then each baseline): trace_id -> prediction row."""
    wanted = set(trace_ids)
    top = {r["trace_id"]: r for r in blame.filter(pl.col("rank") == 1).to_dicts()}
    out: dict[str, dict[str, dict[str, Any]]] = {"halo_nb blame": {}}
    out.update({name: {} for name in BASELINES})
    for trace in trace_views(spans.filter(pl.col("trace_id").is_in(list(wanted))), settings):
        tid = trace.trace_id
        blamed = top.get(tid)
        if blamed is not None:
            span = trace.by_id[blamed["span_id"]]
            out["halo_nb blame"][tid] = _prediction(trace, span, blamed["agent"])
        for name, pick in BASELINES.items():
            span = pick(trace)
            if span is not None:
                out[name][tid] = _prediction(trace, span, agent_name(trace, span))
    return out


def _prediction(trace: TraceView, span: SpanNode, agent: str | None) -> dict[str, Any]:
    return {"trace_id": trace.trace_id, "agent": agent, "span_id": span.span_id,
            "step_index": step_index(trace, span)}


def _norm(text: Any) -> str:
    return str(text or "").strip().lower().replace("_", " ")


def score(gold: dict[str, dict[str, Any]], predicted: dict[str, dict[str, Any]]
          ) -> dict[str, float]:
    """Exact-match agent and step accuracy and step within 2, over every gold trace (a
    missing prediction is wrong), as score.py counts them."""
    hits = {"agent": 0, "step": 0, "step_pm2": 0}
    for tid, g in gold.items():
        p = predicted.get(tid, {})
        hits["agent"] += g["agent"] is not None and _norm(p.get("agent")) == _norm(g["agent"])
        same_span = p.get("span_id") is not None and p.get("span_id") == g["span_id"]
        ps = p.get("step_index")
        hits["step"] += same_span or (ps is not None and ps == g["step"])
        hits["step_pm2"] += ps is not None and g["step"] is not None and abs(ps - g["step"]) <= 2
    n = max(len(gold), 1)
    return {k: v / n for k, v in hits.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traces", type=Path, required=True)
    parser.add_argument("--labels", type=Path)
    parser.add_argument("--out", type=Path, help="write the engine's predictions here")
    parser.add_argument("--depth", type=int, default=Settings().analysis_depth,
                        help="analysis_depth (default: %(default)s)")
    args = parser.parse_args(argv)
    settings = Settings(model="none", analysis_depth=args.depth, persist=False)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="halo-eval-") as tmp, SpanStore(tmp) as store:
        load_store(args.traces, store)
        spans = store.spans()
    gold = read_labels(args.labels) if args.labels else {}
    result = analyze_frame(spans, settings, outcomes={tid: "failed" for tid in gold})
    elapsed = time.perf_counter() - started
    traces = result.trace_count
    print(f"{traces} traces, {spans.height} spans from {args.traces} ({elapsed:.1f} s)")
    if not gold:
        return _false_alarms(result, args.out, spans, settings)
    missing = len(set(gold) - set(spans["trace_id"].unique().to_list()))
    if missing:
        print(f"warning: {missing} labelled traces are not in the trace file")
    methods = predictions(spans, result.blame, settings, gold)
    if args.out:
        _write(args.out, methods["halo_nb blame"].values())
        print(f"predictions -> {args.out}")
    print(f"{'method':40} {'agent':>7} {'step':>7} {'step±2':>7}")
    for name, predicted in methods.items():
        s = score(gold, predicted)
        print(f"{name:40} {s['agent']:7.1%} {s['step']:7.1%} {s['step_pm2']:7.1%}")
    return 0


def _false_alarms(result: Any, out: Path | None, spans: pl.DataFrame, settings: Settings) -> int:
    flagged = result.findings.filter(pl.col("severity").cast(pl.String).is_in(MEDIUM_OR_ABOVE))
    n = max(result.trace_count, 1)
    alarmed = flagged["trace_id"].n_unique()
    judged_failed = result.assignments.filter(pl.col("outcome") == "failed").height
    print(f"traces with a finding of medium or above: {alarmed} / {result.trace_count} "
          f"({alarmed / n:.1%})")
    by_detector = flagged.group_by("detector").agg(pl.col("trace_id").n_unique().alias("traces"))
    by_detector = by_detector.sort(["traces", "detector"], descending=[True, False])
    for detector, count in by_detector.rows():
        print(f"  {detector:24} {count} traces")
    print(f"traces the engine judged failed (and blamed): {judged_failed} / {result.trace_count} "
          f"({judged_failed / n:.1%})")
    if out:
        methods = predictions(spans, result.blame, settings, result.blame["trace_id"].unique())
        _write(out, methods["halo_nb blame"].values())
    return 0


def _write(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in sorted(rows, key=lambda r: r["trace_id"]):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    sys.exit(main())
