"""analyze_frame: span frame in, AnalysisResult out. Deterministic for a given input."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ..config import Settings
from ..localmodel import ModelUnavailable
from . import registry
from .blame import blame_trace
from .correlate import cluster_row, cluster_traces, headline
from .graph import SPAN_FIELDS, ColumnSource, SpanNode, TraceView
from .hypotheses import hypothesis_row
from .model import (
    SYSTEM_PROMPT,
    checked_narrative,
    clean_text,
    load_backend,
    narrative_prompt,
)
from .outcome import FAILED, annotated_traces, trace_outcome
from .prepare import prepare
from .result import (
    ASSIGNMENTS_SCHEMA,
    BLAME_SCHEMA,
    CLUSTERS_SCHEMA,
    FINDINGS_SCHEMA,
    HYPOTHESES_SCHEMA,
    AnalysisResult,
    frame,
)
from .text import acknowledges_absence, failure_terms
from .walk import walk_trace

# Narratives are written for at most this many clusters (the most prevalent first).
MAX_NARRATIVES = 12


def analyze_frame(spans: pl.DataFrame, settings: Settings,
                  outcomes: Mapping[str, str] | None = None) -> AnalysisResult:
    """Walk every trace in ``spans`` (the span frame), run the detectors, correlate the
    findings across traces, explain the clusters, blame the decisive step of each
    failed trace. ``outcomes`` maps trace ids to what the caller knows ("failed" /
    "succeeded"; see outcome.py). See halo_nb/rlm/__init__.py.

    The per-trace map (map_traces) and the cross-trace reduce (reduce_traces) are the
    same two steps halo_nb.distributed runs over partitions of a larger corpus."""
    if not isinstance(spans, pl.DataFrame):
        raise TypeError(f"spans: expected a polars DataFrame, got {type(spans).__name__}")
    with paused_gc():
        started = time.perf_counter()
        prepared = prepare(spans)
        prepare_s = time.perf_counter() - started
        partial = map_traces(prepared, settings, outcomes or {}, latest_time(prepared))
        return reduce_traces([partial], settings, {"prepare_s": prepare_s}, started)


@contextmanager
def paused_gc() -> Iterator[None]:
    """The walk creates a few objects per span and frees none until the end: the cyclic
    garbage collector would rescan them again and again (a 2x slowdown at 200k spans)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@dataclass
class TracePartial:
    """What the per-trace map returns for a set of whole traces; everything keyed by
    trace id, so partials of any partitioning reduce to the same result."""

    trace_ids: list[str] = field(default_factory=list)
    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)  # outcome, source
    failed: set[str] = field(default_factory=set)  # the failure test behind lift
    findings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    blame: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)  # detectors that raised
    walk_s: float = 0.0
    blame_s: float = 0.0


def map_traces(prepared: pl.DataFrame, settings: Settings, given: Mapping[str, str],
               corpus_end: int | None) -> TracePartial:
    """The per-trace map over ``prepared`` (prepare.py; whole traces, with the corpus
    statistics of the whole corpus): graph, walk, detectors, outcome and blame of each
    trace. ``corpus_end`` is the latest time in the whole corpus (latest_time)."""
    dets = registry.registered()
    span_dets = [d for d in dets if d.scope == "span"]
    trace_dets = [d for d in dets if d.scope == "trace"]
    out = TracePartial()
    annotated = annotated_traces(prepared)
    tick = time.perf_counter()
    for trace_id, nodes in _group(prepared):
        trace = TraceView(trace_id, nodes, settings.analysis_depth)
        trace.corpus_end_ns = corpus_end
        outcome = trace.outcome = trace_outcome(trace, given.get(trace_id),
                                                trace_id in annotated)
        errors: list[str] = []
        rows = walk_trace(trace, span_dets, trace_dets, errors)
        out.trace_ids.append(trace_id)
        out.outcomes[trace_id] = (outcome.outcome, outcome.source)
        # What the user says wins; otherwise the engine's broader failure test.
        if (outcome.outcome == FAILED) if outcome.told else _failed(trace):
            out.failed.add(trace_id)
        if outcome.outcome == FAILED:
            started_blame = time.perf_counter()
            out.blame[trace_id] = blame_trace(trace)
            out.blame_s += time.perf_counter() - started_blame
        if rows:
            out.findings[trace_id] = rows
        if errors:
            out.errors[trace_id] = errors
    out.walk_s = time.perf_counter() - tick - out.blame_s
    return out


def reduce_traces(partials: Iterable[TracePartial], settings: Settings,
                  timings: dict[str, float], started: float) -> AnalysisResult:
    """The cross-trace reduce: merge the partials of disjoint sets of whole traces,
    correlate the findings into clusters (prevalence, lift), write the hypotheses and
    narratives, and build the AnalysisResult. ``timings`` has the phases so far;
    ``started`` is when the analysis began (time.perf_counter)."""
    merged = TracePartial()
    for part in partials:
        merged.trace_ids.extend(part.trace_ids)
        merged.outcomes.update(part.outcomes)
        merged.failed |= part.failed
        merged.findings.update(part.findings)
        merged.blame.update(part.blame)
        merged.errors.update(part.errors)
        merged.walk_s += part.walk_s
        merged.blame_s += part.blame_s
    trace_ids = sorted(merged.trace_ids)
    by_trace = merged.findings
    registry.registered()  # loads the plugins, so their load errors are known
    errors = [f"plugin {e}" for e in registry.load_errors()]
    errors += [e for t in trace_ids for e in merged.errors.get(t, ())]
    findings = [f for t in trace_ids for f in by_trace.get(t, ())]
    blame_rows = [b for t in trace_ids for b in merged.blame.get(t, ())]
    timings["walk_s"] = merged.walk_s
    timings["blame_s"] = merged.blame_s
    failed = merged.failed

    tick = time.perf_counter()
    n = len(trace_ids)
    systemic = settings.cross_trace_correlation and n >= settings.min_traces_for_systemic_analysis
    cluster_rows: list[dict[str, Any]] = []
    hypothesis_rows: list[dict[str, Any]] = []
    primary: dict[str, str | None] = {}
    if systemic:
        cluster_rows, hypothesis_rows, primary = _correlate(by_trace, failed, n)
    note = _note(settings, n, len(cluster_rows), systemic)
    timings["correlate_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    model_status = _narrate(settings, cluster_rows, hypothesis_rows, n)
    timings["model_s"] = time.perf_counter() - tick

    findings.sort(key=lambda f: (f["trace_id"], f["start_ns"], f["span_id"], f["detector"]))
    assignments = [{"trace_id": t, "cluster_id": primary.get(t), "failed": t in failed,
                    "outcome": merged.outcomes[t][0], "outcome_source": merged.outcomes[t][1]}
                   for t in trace_ids]
    result = AnalysisResult(
        findings=frame(findings, FINDINGS_SCHEMA),
        clusters=frame(cluster_rows, CLUSTERS_SCHEMA),
        hypotheses=frame(hypothesis_rows, HYPOTHESES_SCHEMA),
        assignments=frame(assignments, ASSIGNMENTS_SCHEMA),
        blame=frame(blame_rows, BLAME_SCHEMA),
        systemic=systemic, note=note, model_status=model_status, trace_count=n,
        settings=settings, detector_errors=errors, timings=timings,
    )
    timings["total_s"] = time.perf_counter() - started
    return result


def _correlate(by_trace: dict[str, list[dict[str, Any]]], failed: set[str], n: int
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str | None]]:
    """Cluster rows, hypothesis rows and each trace's primary cluster."""
    clusters, primary = cluster_traces(by_trace)
    base_rate = len(failed) / n if n else 0.0
    cluster_rows, hypothesis_rows = [], []
    for cluster in clusters:
        row = cluster_row(cluster, n, failed, base_rate)
        hyp = hypothesis_row(row, headline(cluster), by_trace)
        row["title"] = hyp["title"]
        cluster_rows.append(row)
        hypothesis_rows.append(hyp)
    return cluster_rows, hypothesis_rows, primary


def _note(settings: Settings, n: int, clusters: int, systemic: bool) -> str:
    if systemic:
        return (f"systemic analysis over {n} traces: {clusters} failure cluster"
                f"{'' if clusters == 1 else 's'} recurring in 2 or more traces")
    if not settings.cross_trace_correlation:
        return ("systemic analysis is switched off (cross_trace_correlation = false); "
                "findings are per trace")
    return (f"systemic analysis needs at least {settings.min_traces_for_systemic_analysis}"
            f" traces; got {n}. Findings are per trace.")


def trace_views(spans: pl.DataFrame, settings: Settings) -> Iterator[TraceView]:
    """Each trace of the span frame as the walk sees it (for scripts that fit or probe
    the engine's parts)."""
    prepared = prepare(spans)
    end = latest_time(prepared)
    for trace_id, nodes in _group(prepared):
        trace = TraceView(trace_id, nodes, settings.analysis_depth)
        trace.corpus_end_ns = end
        yield trace


def _group(prepared: pl.DataFrame) -> Iterator[tuple[str, list[SpanNode]]]:
    """(trace_id, [SpanNode...]) per trace; the frame is sorted by trace already."""
    source = ColumnSource(prepared["attributes"], prepared["events"])
    rows = prepared.select(SPAN_FIELDS).rows()
    current: str | None = None
    nodes: list[SpanNode] = []
    for values in rows:
        if values[0] != current:
            if nodes:
                yield current, nodes
            current, nodes = values[0], []
        nodes.append(SpanNode(values, source))
    if nodes:
        yield current, nodes


def latest_time(prepared: pl.DataFrame) -> int | None:
    """The latest start or end time in the frame (the corpus end ``never_ended`` reads)."""
    if prepared.is_empty():
        return None
    value = prepared.select(pl.max_horizontal(pl.col("start_ns").max(),
                                              pl.col("end_ns").max())).item()
    return None if value is None else int(value)


def _failed(trace: TraceView) -> bool:
    """Whether a trace's outcome counts as failed (the base rate behind lift): a span
    failed, the root is missing or never ended, or the root's output is missing (when
    content is captured), reports a failure, or says nothing was found."""
    if any(s.failed for s in trace.spans):
        return True
    root = trace.root
    if root is None or not root.ended:
        return True
    output = root.output
    if root.input is not None and not (output or "").strip():
        return True
    return bool(output) and (bool(failure_terms(output)) or acknowledges_absence(output))


def _narrate(settings: Settings, clusters: list[dict[str, Any]],
             hypotheses: list[dict[str, Any]], analysed: int) -> str:
    if settings.model.strip().lower() in ("", "none", "off"):
        return 'unavailable: model disabled (model = "none")'
    if not clusters:
        return "unused: no clusters to narrate"
    try:
        backend = load_backend(settings.model, settings.model_seed)
        for cluster, hyp in list(zip(clusters, hypotheses, strict=True))[:MAX_NARRATIVES]:
            text = backend.complete(SYSTEM_PROMPT, narrative_prompt(cluster, hyp, analysed))
            hyp["narrative"] = checked_narrative(clean_text(text), cluster, analysed)
    except ModelUnavailable as exc:
        for hyp in hypotheses:
            hyp["narrative"] = None
        return f"unavailable: {exc}"
    except Exception as exc:  # a model that crashes must not lose the analysis
        for hyp in hypotheses:
            hyp["narrative"] = None
        return f"unavailable: the model failed: {type(exc).__name__}: {exc}"
    extra = len(clusters) - MAX_NARRATIVES
    suffix = f"; narratives for the first {MAX_NARRATIVES} clusters only" if extra > 0 else ""
    return f"ok: {backend.description}{suffix}"
