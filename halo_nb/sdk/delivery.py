"""Where SDK spans go: straight into this kernel's store (no network hop), or over
OTLP/HTTP to a configured endpoint.

halo owns its TracerProvider, so the user's global OpenTelemetry set-up is left
alone unless ``configure_export(set_global=True)`` asks otherwise.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Mapping
from urllib.parse import urlsplit

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, Tracer, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from .. import runtime
from ..ingest.otel_spans import readable_spans_to_frame

TRACER_NAME = "halo_nb.sdk"
DEFAULT_SERVICE_NAME = "agent"
FLUSH_TIMEOUT_MS = 10_000
FLUSH_DELAY_S = 0.1
MAX_BUFFERED_SPANS = 512
_ENDPOINT_ENV = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


class StoreSpanProcessor(SpanProcessor):
    """Appends finished spans to the kernel's store in batches (one frame per span would
    cost ~40x more): at once when a trace's root span ends, so a trace is queryable as
    soon as ``end_trace`` returns; when ``MAX_BUFFERED_SPANS`` wait; otherwise within
    ``FLUSH_DELAY_S``, so views follow a trace that is still running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._buffer: list[ReadableSpan] = []
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def on_end(self, span: ReadableSpan) -> None:
        parent = span.parent
        with self._lock:
            self._buffer.append(span)
            due = parent is None or parent.is_remote or len(self._buffer) >= MAX_BUFFERED_SPANS
            if not due and self._thread is None:
                self._thread = threading.Thread(target=self._flush_later, daemon=True,
                                                name="halo-sdk-flush")
                self._thread.start()
        if due:
            self.force_flush()
        else:
            self._wake.set()

    def force_flush(self, timeout_millis: int = FLUSH_TIMEOUT_MS) -> bool:
        with self._flush_lock:
            with self._lock:
                spans, self._buffer = self._buffer, []
            if spans:
                try:
                    runtime.store().append(readable_spans_to_frame(spans))
                except Exception as exc:  # noqa: BLE001 - a storage fault must not break the agent
                    warnings.warn(f"halo_nb: {len(spans)} span(s) were not stored: {exc}",
                                  stacklevel=2)
        return True

    def shutdown(self) -> None:
        self._closed.set()
        self._wake.set()
        self.force_flush()

    def _flush_later(self) -> None:
        while not self._closed.is_set():
            self._wake.wait()
            self._wake.clear()
            self._closed.wait(FLUSH_DELAY_S)
            self.force_flush()


class _Dispatcher(SpanProcessor):
    """The one processor every halo provider holds; its targets can be swapped."""

    def __init__(self) -> None:
        self.targets: tuple[SpanProcessor, ...] = ()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for target in self.targets:
            target.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for target in self.targets:
            target.on_end(span)

    def force_flush(self, timeout_millis: int = FLUSH_TIMEOUT_MS) -> bool:
        return all([target.force_flush(timeout_millis) for target in self.targets])

    def shutdown(self) -> None:
        for target in self.targets:
            target.shutdown()


class _Delivery:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.dispatcher = _Dispatcher()
        self.provider: TracerProvider | None = None
        self.tracer: Tracer | None = None
        self.endpoint: str | None = None
        self.service_name: str | None = None


_state = _Delivery()


def configure_export(endpoint: str | None = None, *, headers: Mapping[str, str] | None = None,
                     local: bool = False, service_name: str | None = None,
                     set_global: bool = False) -> str | None:
    """Choose where SDK spans go; returns the OTLP traces URL in use (None: in-process only).

    ``endpoint``: an OTLP/HTTP base URL (``http://host:4318``, ``/v1/traces`` is added) or
    full traces URL. Without one, the ``OTEL_EXPORTER_OTLP_*ENDPOINT`` variables decide;
    without those, spans go straight into this kernel's store. An endpoint that is this
    kernel's own running collector is served in-process too. ``local=True`` also stores
    spans in this kernel while exporting. ``service_name`` (default: ``OTEL_SERVICE_NAME``,
    else "agent") names the resource of spans started from now on. ``set_global`` makes
    halo's provider the global OpenTelemetry one (so instrumentors using the global
    provider report to halo too).
    """
    with _state.lock:
        _build(endpoint, headers, local, service_name)
        if set_global:
            otel_trace.set_tracer_provider(_state.provider)
        return _state.endpoint


def tracer() -> Tracer:
    with _state.lock:
        if _state.tracer is None:
            _build(None, None, False, None)
        assert _state.tracer is not None
        return _state.tracer


def flush(timeout_millis: int = FLUSH_TIMEOUT_MS) -> bool:
    """Deliver every finished span now (to the store, or out over OTLP); True when all
    went out within ``timeout_millis``."""
    return _state.dispatcher.force_flush(timeout_millis)


# At process exit the store is written only after the SDK's buffered spans reach it.
runtime.before_shutdown(flush)


def exporting_to() -> str | None:
    """The OTLP traces URL spans are sent to, or None when they stay in-process."""
    return _state.endpoint


def _build(endpoint: str | None, headers: Mapping[str, str] | None, local: bool,
           service_name: str | None) -> None:
    traces_url = _traces_url(endpoint) if endpoint else _env_traces_url()
    if traces_url is not None and _is_own_collector(traces_url):
        traces_url = None
    targets: list[SpanProcessor] = []
    if traces_url is not None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=traces_url, headers=dict(headers or {}) or None)
        targets.append(BatchSpanProcessor(exporter))
    keep_local = traces_url is None or local
    if keep_local:
        targets.insert(0, StoreSpanProcessor())
    old_targets = _state.dispatcher.targets
    _state.dispatcher.targets = tuple(targets)
    for target in old_targets:
        target.shutdown()
    _state.endpoint = traces_url
    name = service_name or os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    if _state.provider is None or name != _state.service_name:
        # Spans already open keep their provider; they still end into the same dispatcher.
        _state.service_name = name
        _state.provider = TracerProvider(resource=Resource.create({"service.name": name}))
        _state.provider.add_span_processor(_state.dispatcher)
        from .. import __version__

        _state.tracer = _state.provider.get_tracer(TRACER_NAME, __version__)


def _traces_url(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"endpoint: expected an http(s) URL, got {endpoint!r}")
    if parts.path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def _env_traces_url() -> str | None:
    traces = os.environ.get(_ENDPOINT_ENV[0], "").strip()
    if traces:
        return traces
    base = os.environ.get(_ENDPOINT_ENV[1], "").strip()
    return base.rstrip("/") + "/v1/traces" if base else None


def _is_own_collector(url: str) -> bool:
    collector = runtime.collector()
    if collector is None or not collector.running:
        return False
    parts = urlsplit(url)
    loopback = {"127.0.0.1", "localhost", "::1"}
    host = parts.hostname or ""
    same_host = host == collector.host or (host in loopback and collector.host in loopback)
    return same_host and parts.port == collector.port and parts.path == "/v1/traces"
