"""The command layer: what ``halo`` (cli.py) and ``%halo`` (magics.py) do, once.

Each function takes plain values (trace ids or prefixes, paths, filters), calls the public
API and returns data or text for a person; the front doors only parse arguments and print.
Trace ids follow one rule everywhere: a full id, or a unique prefix of at least
``MIN_ID_PREFIX`` hex digits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

import halo_nb

MIN_ID_PREFIX = 4
TRACE_STATUSES = ("ok", "error", "unset", "open")


class CommandError(ValueError):
    """Input a command cannot use (an unknown, ambiguous or too short trace id, a filter
    that matches nothing it could); the message is one line for a person."""


# ---- trace ids -------------------------------------------------------------------------------

def resolve_trace_ids(texts: Sequence[str]) -> list[str]:
    """Full stored trace ids for ids or unique prefixes, in the order given, without repeats."""
    known = halo_nb.store().trace_ids()
    return list(dict.fromkeys(_resolve(text, known) for text in texts))


def resolve_trace_id(text: str) -> str:
    return resolve_trace_ids([text])[0]


def _resolve(text: str, known: list[str]) -> str:
    key = text.strip().lower()
    if key in set(known):
        return key
    if len(key) < MIN_ID_PREFIX:
        raise CommandError(f"trace id prefix {text!r} is too short: give at least "
                           f"{MIN_ID_PREFIX} characters of the id")
    matches = [trace_id for trace_id in known if trace_id.startswith(key)]
    if len(matches) > 1:
        shown = ", ".join(m[:12] for m in matches[:5]) + (" ..." if len(matches) > 5 else "")
        raise CommandError(f"trace id prefix {text!r} is ambiguous: {len(matches)} traces "
                           f"start with it ({shown}); give more characters")
    if not matches:
        raise CommandError(f"no stored trace with id {text!r} (list them with "
                           "'halo list-traces' or '%halo list')")
    return matches[0]


# ---- reading the store -----------------------------------------------------------------------

def trace_listing(*, limit: int = 0, status: str | None = None,
                  name: str | None = None) -> tuple[pl.DataFrame, int]:
    """The stored traces, newest first, filtered by status (ok, error, unset, or open for
    traces still running) and by a case-insensitive substring of the root span's name;
    returns (at most ``limit`` rows, or all for 0; how many matched)."""
    table = halo_nb.trace_table().sort("start_ns", descending=True, nulls_last=True)
    if status is not None:
        if status not in TRACE_STATUSES:
            raise CommandError(f"status must be one of {', '.join(TRACE_STATUSES)}; "
                               f"got {status!r}")
        table = (table.filter(~pl.col("ended")) if status == "open"
                 else table.filter(pl.col("status").cast(pl.String) == status))
    if name:
        table = table.filter(pl.col("name").fill_null("").str.to_lowercase()
                             .str.contains(name.lower(), literal=True))
    matched = table.height
    return (table.head(limit) if limit else table), matched


def status_rows() -> list[tuple[str, str]]:
    """(label, value) pairs: where the collector listens, its counters, what is stored."""
    from . import runtime
    from .sdk import exporting_to

    settings = halo_nb.settings()
    collector = runtime.collector()
    store = halo_nb.store()
    rows: list[tuple[str, str]] = []
    if collector is not None and collector.running:
        counts = collector.counts
        rows += [
            ("collector", f"listening on {collector.url}"),
            ("requests", f"{counts.requests_accepted} accepted, "
                         f"{counts.requests_rejected} rejected"),
            ("spans received", f"{counts.spans_accepted} accepted, "
                               f"{counts.spans_rejected} rejected"),
        ]
    else:
        rows.append(("collector", "not running"))
    rows += [
        ("spans stored", f"{len(store)}"),
        ("traces stored", f"{len(store.trace_ids())}"),
        ("storage", str(settings.storage_path.resolve()) if settings.persist
         else "memory only (persist = false)"),
        ("SDK spans", f"OTLP to {exporting_to()}" if exporting_to() else "stored in-process"),
    ]
    return rows


# ---- snapshots and comparison ----------------------------------------------------------------

@dataclass(frozen=True)
class Exported:
    path: Path
    traces: int
    spans: int


def export(trace_texts: Sequence[str] | None, path: str | Path, *,
           with_findings: bool = False) -> Exported:
    """Write the given traces (ids or prefixes), or every trace for None, to a snapshot."""
    selection = None if trace_texts is None else resolve_trace_ids(trace_texts)
    if selection is not None and not selection:
        raise CommandError("give at least one trace id, or export every trace")
    written = halo_nb.export_snapshot(selection, path, with_findings=with_findings)
    table = halo_nb.trace_table()
    if selection is not None:
        table = table.filter(pl.col("trace_id").is_in(selection))
    return Exported(written, table.height, int(table["span_count"].sum() or 0))


def import_snapshot(path: str | Path) -> Any:
    """Load a snapshot file (all or nothing); returns the import result."""
    return halo_nb.import_snapshot(path)


def compare(trace_a: str, trace_b: str) -> Any:
    a, b = resolve_trace_id(trace_a), resolve_trace_id(trace_b)
    return halo_nb.compare(a, b)


# ---- analysis --------------------------------------------------------------------------------

def analyze(trace_texts: Sequence[str] | None = None, *, source: Sequence[str] | None = None,
            engine: str = "local", address: str | None = None, workers: int | None = None,
            scratch: str | None = None, **overrides: Any) -> Any:
    """Analyse every stored trace (or the given ones) with the settings plus ``overrides``;
    with ``source``, the spans of those folders, snapshots or globs instead (trace ids then
    in full), on ``engine`` ("local", or "dask" at ``address`` / on ``workers`` local
    processes, shuffling through ``scratch``)."""
    ids = None
    if trace_texts:  # prefixes resolve against the in-kernel store only
        ids = list(trace_texts) if source else resolve_trace_ids(trace_texts)
    return halo_nb.analyze(ids, source=list(source) if source else None, engine=engine,
                           address=address, workers=workers, scratch=scratch, **overrides)


def analysis_text(result: Any, *, clusters: int = 10) -> str:
    """The analysis for a terminal: counts, each cluster with its hypothesis and fix, and the
    decisive span of each failed trace when blame is known."""
    lines = [result.summary().split("\n", 1)[0]]
    if result.note:
        lines.append(result.note)
    hypotheses = {h["cluster_id"]: h for h in result.hypotheses.to_dicts()}
    for c in result.clusters.head(clusters).to_dicts():
        h = hypotheses.get(c["cluster_id"], {})
        lines += ["", f"[{c['severity']}] {h.get('title') or c['detector']} — {c['cluster_id']}",
                  f"  {c['trace_count']} of {result.trace_count} traces "
                  f"({c['prevalence']:.0%}) at {c['span_path']}"]
        if h.get("hypothesis"):
            lines.append(f"  why: {h['hypothesis']}")
        if h.get("suggested_fix"):
            lines.append(f"  fix: {h['suggested_fix']}")
    if result.clusters.height > clusters:
        lines.append(f"\n({clusters} of {result.clusters.height} clusters shown)")
    blame = getattr(result, "blame", None)
    if blame is not None and blame.height:
        top = blame.filter(pl.col("rank") == 1) if "rank" in blame.columns else blame
        lines += ["", f"decisive step of {top.height} failed trace(s):"]
        for row in top.head(clusters).to_dicts():
            lines.append(f"  {row['trace_id'][:12]}  {row.get('agent') or '-'}  "
                         f"{row.get('span_name') or row['span_id']}")
    return "\n".join(lines)


def explain(target: str, *, failed: bool = False) -> str:
    """Outcome and blame of one stored trace (an id or prefix), or of every trace in a
    snapshot file. ``failed`` marks the run(s) failed, as a user who knows would."""
    from .rlm.explain import explain_spans

    settings = halo_nb.settings().replace(model="none")
    path = Path(target)
    if path.is_file():
        from .interchange.snapshot import decode_snapshot, read_snapshot

        spans = decode_snapshot(read_snapshot(path), origin=path.name)
        ids = spans["trace_id"].unique(maintain_order=True).to_list()
    else:
        ids = [resolve_trace_id(target)]
        spans = halo_nb.spans(ids[0])
    outcomes = {trace_id: "failed" for trace_id in ids} if failed else None
    return explain_spans(spans, settings, ids, outcomes)


def show_trace(trace_text: str) -> str:
    """One trace as a span tree: name, kind, duration, status and each span's findings."""
    from .rlm import analyze_frame

    trace_id = resolve_trace_id(trace_text)
    spans = halo_nb.spans(trace_id)
    result = analyze_frame(spans, halo_nb.settings().replace(model="none"))
    flagged: dict[str, list[str]] = {}
    for f in result.findings.to_dicts():
        flagged.setdefault(f["span_id"], []).append(f"{f['severity']} {f['detector']}")
    return render_tree(spans, flagged)


def render_tree(spans: pl.DataFrame, flagged: dict[str, list[str]]) -> str:
    """The span tree of one trace, children in start order, with box-drawing branches."""
    rows = spans.sort("start_ns", nulls_last=True).to_dicts()
    ids = {r["span_id"] for r in rows}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for r in rows:
        parent = r["parent_span_id"] if r["parent_span_id"] in ids else None
        children.setdefault(parent, []).append(r)
    head = rows[0] if rows else {}
    start = min((r["start_ns"] for r in rows if r["start_ns"] is not None), default=None)
    lines = [f"trace {head.get('trace_id', '?')}  {len(rows)} spans"
             + (f"  started {_utc(start)}" if start is not None else "")]

    def walk(parent: str | None, prefix: str) -> None:
        kids = children.get(parent, [])
        for i, r in enumerate(kids):
            last = i == len(kids) - 1
            status = str(r["status"])
            notes = [f"{r['kind']}", duration_text(r["duration_ms"])]
            if status == "error":
                notes.append("ERROR" + (f": {clip(r['status_message'], 60)}"
                                        if r["status_message"] else ""))
            elif r["end_ns"] is None:
                notes.append("open")
            marks = flagged.get(r["span_id"], [])
            line = (f"{prefix}{'└─ ' if last else '├─ '}{clip(r['name'] or '?', 50)}  "
                    f"[{', '.join(notes)}]")
            if marks:
                line += "  ⚑ " + "; ".join(marks)
            lines.append(line)
            walk(r["span_id"], prefix + ("   " if last else "│  "))

    walk(None, "")
    return "\n".join(lines)


def duration_text(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def _utc(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clip(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
