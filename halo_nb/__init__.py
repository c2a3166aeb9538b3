"""halo_nb: a local, Jupyter-native debugger for AI-agent traces.

The public API is this module's functions; everything else is internal.
Heavy parts (widgets, analysis engine, model) import on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ConfigError, Settings
from .runtime import configure, serve, settings, stop
from .sdk import annotate, end_trace, span, start_trace

if TYPE_CHECKING:
    import polars as pl

__version__ = "0.1.0"

__all__ = [
    "ConfigError", "Settings", "configure", "settings", "serve", "stop", "store",
    "spans", "trace_table", "start_trace", "span", "annotate", "end_trace",
    "traces", "waterfall", "analyze", "clusters", "insights", "dashboard", "report",
    "export_snapshot", "import_snapshot", "replay", "compare", "load_ipython_extension",
]


def store() -> Any:
    """The process-wide SpanStore."""
    from . import runtime

    return runtime.store()


def spans(trace_id: str | None = None) -> pl.DataFrame:
    """Every stored span (or one trace's) as a Polars frame: a copy, safe to keep."""
    return store().spans(trace_id)


def trace_table() -> pl.DataFrame:
    """One row per trace as a Polars frame (the data behind the ``traces()`` view)."""
    return store().traces()


def traces() -> Any:
    """The trace-list widget: live, sortable, filterable; select a trace to open its waterfall."""
    from .widgets import TraceList

    return TraceList(store())


def waterfall(trace_id: str) -> Any:
    """The span waterfall of one trace."""
    from .widgets import Waterfall

    return Waterfall(store(), trace_id)


ENGINES = ("local", "dask")


def analyze(trace_ids: Any = None, *, outcomes: Mapping[str, str] | None = None,
            source: Any = None, engine: str = "local", address: str | None = None,
            workers: int | None = None, scratch: str | None = None, **overrides: Any) -> Any:
    """Run the RLM engine over the stored traces (or a subset); returns an AnalysisResult
    with ``findings``, ``clusters``, ``hypotheses`` and ``blame`` frames. ``outcomes`` maps
    trace ids to what you know of them ("failed" / "succeeded"); ``overrides`` are settings
    for this run.

    ``source`` analyses storage folders, Parquet parts, snapshot files, globs or fsspec
    URLs instead of the in-kernel store (halo_nb.sources). ``engine="dask"`` runs that
    analysis on the Dask scheduler at ``address``, or on a local cluster of ``workers``
    processes (the ``distributed`` extra): the same result, for corpora past one
    process's memory; ``scratch`` is a folder every worker can use for the shuffle
    (default: a temporary folder, right for a local cluster). The views keep showing the
    in-kernel store's latest analysis."""
    from . import runtime

    if engine not in ENGINES:
        raise ValueError(f"engine: {engine!r} is not one of {', '.join(ENGINES)}")
    if engine == "local" and (address, workers, scratch) != (None, None, None):
        raise ValueError("address, workers and scratch are for engine='dask'")
    if engine == "dask" and source is None:
        raise ValueError("engine='dask' reads sources: give source=[storage folders, "
                         "snapshots or globs] (this kernel's store writes its parts to "
                         "settings().storage_path)")
    ids = None if trace_ids is None else (
        [trace_ids] if isinstance(trace_ids, str) else list(trace_ids))
    run_settings = settings().replace(**overrides) if overrides else settings()
    if engine == "dask":
        from .distributed import analyze_sources

        return analyze_sources(source, run_settings, outcomes=outcomes, trace_ids=ids,
                               address=address, workers=workers, scratch=scratch)
    from .rlm import analyze_frame

    if source is not None:
        from .rlm.prepare import NEEDED
        from .sources import read_sources

        return analyze_frame(read_sources(source, NEEDED, ids), run_settings,
                             outcomes=outcomes)
    frame = store().spans()
    if ids is not None:
        import polars as pl

        frame = frame.filter(pl.col("trace_id").is_in(ids))
    result = analyze_frame(frame, run_settings, outcomes=outcomes)
    runtime.set_last_analysis(result)
    return result


def _latest_analysis() -> Any:
    from . import runtime

    return runtime.last_analysis() or analyze()


def clusters() -> Any:
    """The failure-cluster view of the latest analysis (runs one if there is none)."""
    from .widgets import Clusters

    return Clusters(_latest_analysis(), store())


def insights() -> Any:
    """The insights view: hypotheses, fixes, confidence and evidence spans."""
    from .widgets import Insights

    return Insights(_latest_analysis(), store())


def dashboard() -> Any:
    """Trace list, waterfall, clusters and insights as tabs, with charts."""
    from .widgets import Dashboard

    return Dashboard(store(), _latest_analysis())


def report(path: str | Path) -> Path:
    """Write a self-contained HTML report of the dashboard (no server, no network)."""
    from .widgets.report import write_report

    return write_report(store(), _latest_analysis(), Path(path))


def export_snapshot(traces: Any, path: str | Path, *, with_findings: bool = False) -> Path:
    """Write trace ids, a Polars filter expression, or None (all) to a portable JSON file."""
    from .interchange.snapshot import export_snapshot as _export

    return _export(store(), traces, Path(path), with_findings=with_findings)


def import_snapshot(path: str | Path) -> Any:
    """Load a snapshot file into the store (idempotent, all or nothing)."""
    from .interchange.snapshot import import_snapshot as _import

    return _import(store(), Path(path))


def replay(path: str | Path, endpoint: str, **options: Any) -> Any:
    """Re-send a snapshot's spans to an OTLP/HTTP endpoint."""
    from .interchange.replay import replay as _replay

    return _replay(Path(path), endpoint, **options)


def compare(trace_a: str, trace_b: str) -> Any:
    """Align two traces' span trees and return what changed."""
    from .interchange.compare import compare_traces

    return compare_traces(store().spans(trace_a), store().spans(trace_b))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext halo_nb``: registers the ``%halo`` magic."""
    from .magics import register

    register(ipython)
