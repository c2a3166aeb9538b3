"""The anywidget views: trace list, waterfall, clusters, insights and dashboard.

All five are one front-end module (``static/widget.js``, built from ``js/``) showing
different tabs. Row data goes to the browser as Arrow IPC buffers in custom messages;
the browser asks for what it shows (a trace's spans when it is opened, a span's
attributes when it is selected), so nothing is sent upfront that is not drawn.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import polars as pl
import traitlets

from .analysis_view import AnalysisView, Message
from .charts import chart_figures
from .live import Throttle
from .payloads import TraceTableFeed, span_detail, waterfall_message
from .search import matching_spans, matching_traces

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
LIST_VIEWS = ("traces", "dashboard")


def _latest_result() -> Any:
    from .. import runtime

    return runtime.last_analysis()


def _follow_analyses(callback: Callable[[], None]) -> Callable[[], None]:
    from .. import runtime

    return runtime.follow_analyses(callback)


class HaloWidget(anywidget.AnyWidget):
    """Base of every halo_nb view: answers the front end's requests from a SpanStore and
    an analysis result, and pushes trace-list and waterfall changes as spans arrive.

    Without an explicit result a view reads the latest analysis of the session
    (``halo_nb.analyze()``), so the trace list's findings follow re-analyses."""

    _esm = STATIC / "widget.js"
    view = traitlets.Unicode("traces").tag(sync=True)
    height = traitlets.Int(560).tag(sync=True)
    trace_id = traitlets.Unicode("").tag(sync=True)
    selected_trace = traitlets.Unicode("").tag(sync=True)
    _throttle: Throttle | None = None
    _unsubscribe: Callable[[], None] | None = None
    _unfollow: Callable[[], None] | None = None

    def __init__(self, store: Any, result: Any = None, *, view: str, trace_id: str = "",
                 height: int = 560, live: bool = True) -> None:
        super().__init__(view=view, trace_id=trace_id, height=height)
        self._store = store
        self._result_source: Callable[[], Any] = (
            _latest_result if result is None else (lambda: result))
        self._result: Any = object()
        self._view_of_result = AnalysisView()
        self._feed = TraceTableFeed()
        self._lock = threading.RLock()
        self._open: tuple[str, str | None] | None = None
        self._open_spans: pl.DataFrame | None = None
        self.on_msg(self._on_message)
        if live:
            self._throttle = Throttle(self._refresh)
            self._unsubscribe = store.subscribe(self._throttle.notify)
            if result is None:  # a new analyze() refreshes findings, clusters and flags
                self._unfollow = _follow_analyses(self._throttle.notify)

    def close(self) -> None:
        """Stop following the store, then close the comm."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._unfollow is not None:
            self._unfollow()
            self._unfollow = None
        if self._throttle is not None:
            self._throttle.close()
        super().close()

    @property
    def _analysis(self) -> AnalysisView:
        result = self._result_source()
        if result is not self._result:
            self._result = result
            self._view_of_result = AnalysisView.of(result)
        return self._view_of_result

    # ---- requests from the browser --------------------------------------------------------

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: list[Any]) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        handler = self._HANDLERS.get(kind)
        if handler is None:
            log.warning("halo_nb: unknown widget message %r", kind)
            return
        try:
            handler(self, content)
        except Exception as exc:  # the view shows the error; the kernel keeps going
            log.exception("halo_nb: widget request %r failed", kind)
            reply = self._REPLIES.get(kind, kind)
            self._push(({"type": reply, "error": f"{type(exc).__name__}: {exc}",
                         "trace_id": content.get("trace_id"),
                         "span_id": content.get("span_id"), "seq": content.get("seq")}, []))

    def _on_ready(self, _content: dict[str, Any]) -> None:
        with self._lock:
            if self.view in LIST_VIEWS:
                self._push(self._feed.full(self._store.traces(), self._analysis))
            if self.view in ("clusters", "insights", "dashboard"):
                self._push(self._analysis.message(self._store))
            if self.view == "waterfall" and self.trace_id:
                self._open_trace(self.trace_id, None)

    def _on_open(self, content: dict[str, Any]) -> None:
        cluster = content.get("cluster_id")
        self._open_trace(str(content["trace_id"]), None if cluster is None else str(cluster))

    def _on_detail(self, content: dict[str, Any]) -> None:
        trace_id, span_id = str(content["trace_id"]), str(content["span_id"])
        spans = self._open_spans
        if spans is None or self._open is None or self._open[0] != trace_id:
            spans = self._store.spans(trace_id)
        detail = span_detail(spans, span_id, self._analysis.findings)
        self._push(({"type": "detail", "trace_id": trace_id, "span_id": span_id,
                     "detail": detail}, []))

    def _on_search(self, content: dict[str, Any]) -> None:
        trace_ids = matching_traces(self._store.spans(), str(content.get("text", "")))
        self._push(({"type": "searched", "seq": content.get("seq"), "trace_ids": trace_ids}, []))

    def _on_find(self, content: dict[str, Any]) -> None:
        trace_id = str(content["trace_id"])
        spans = self._open_spans
        if spans is None or self._open is None or self._open[0] != trace_id:
            spans = self._store.spans(trace_id)
        self._push(({"type": "found", "seq": content.get("seq"), "trace_id": trace_id,
                     "span_ids": matching_spans(spans, str(content.get("text", "")))}, []))

    def _on_charts(self, _content: dict[str, Any]) -> None:
        figures = chart_figures(self._store.spans(), self._store.traces(),
                                self._analysis.clusters)
        self._push(({"type": "charts", "figures": figures}, []))

    def _on_plotly(self, _content: dict[str, Any]) -> None:
        from plotly.offline import get_plotlyjs

        self._push(({"type": "plotly", "source": get_plotlyjs()}, []))

    _HANDLERS = {"ready": _on_ready, "open": _on_open, "detail": _on_detail,
                 "search": _on_search, "find": _on_find, "charts": _on_charts,
                 "plotly": _on_plotly}
    _REPLIES = {"open": "waterfall", "search": "searched", "find": "found"}

    # ---- pushing to the browser -------------------------------------------------------------

    def _open_trace(self, trace_id: str, cluster_id: str | None, keep: bool = False) -> None:
        with self._lock:
            spans = self._store.spans(trace_id)
            self._open = (trace_id, cluster_id)
            self._open_spans = spans
            analysis = self._analysis
            highlight = analysis.highlight(cluster_id, spans)
            self._push(waterfall_message(spans, trace_id, highlight, keep=keep,
                                         analysis=analysis))

    def _refresh(self) -> None:
        """Runs on the throttle's thread after spans arrived or a new analysis was kept."""
        with self._lock:
            reanalysed = self._result_source() is not self._result
            analysis = self._analysis
            if self.view in LIST_VIEWS:
                changes = self._feed.changes(self._store.traces(), analysis)
                if changes is not None:
                    self._push(changes)
            if reanalysed and self.view in ("clusters", "insights", "dashboard"):
                self._push(analysis.message(self._store))
            if self._open is not None and self._open_spans is not None:
                trace_id, cluster_id = self._open
                if (reanalysed
                        or self._store.spans(trace_id).height != self._open_spans.height):
                    self._open_trace(trace_id, cluster_id, keep=True)

    def _push(self, message: Message) -> None:
        content, buffers = message
        with self._lock:
            self.send(content, buffers or None)


class TraceList(HaloWidget):
    """One row per trace, live; select a trace to open its waterfall in place."""

    def __init__(self, store: Any, *, height: int = 560) -> None:
        super().__init__(store, None, view="traces", height=height)


class Waterfall(HaloWidget):
    """The span waterfall of one trace (follows the trace while spans still arrive)."""

    def __init__(self, store: Any, trace_id: str, *, height: int = 560) -> None:
        store.spans(trace_id)  # unknown trace: a clear error now, not an empty view later
        super().__init__(store, None, view="waterfall", trace_id=trace_id, height=height)


class Clusters(HaloWidget):
    """Failure clusters of an analysis result; example traces open with flagged spans marked."""

    def __init__(self, result: Any, store: Any, *, height: int = 560) -> None:
        super().__init__(store, result, view="clusters", height=height)


class Insights(HaloWidget):
    """Hypotheses, suggested fixes, confidence and evidence spans of an analysis result."""

    def __init__(self, result: Any, store: Any, *, height: int = 560) -> None:
        super().__init__(store, result, view="insights", height=height)


class Dashboard(HaloWidget):
    """Traces, waterfall, clusters, insights and charts as tabs."""

    def __init__(self, store: Any, result: Any, *, height: int = 620) -> None:
        super().__init__(store, result, view="dashboard", height=height)
