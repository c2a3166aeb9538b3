"""Traces: ``start_trace`` opens a root span, ``end_trace`` closes it.

A notebook runs one agent across several cells, and cells may not share a
``contextvars`` context, so besides the OpenTelemetry context the SDK keeps the
open traces: when exactly one is open, a span without a parent joins it.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.context import Context

from ..ingest import rules
from . import delivery
from .handle import SpanHandle, check_type, otel_kind, type_attributes

if TYPE_CHECKING:
    from .spans import SpanScope

_open_traces: weakref.WeakValueDictionary[str, Trace] = weakref.WeakValueDictionary()
_open_lock = threading.Lock()


class Trace:
    """One agent run: its root span and the spans under it. Usable as a context
    manager (``with start_trace("run") as t:``), which ends it, failed on an exception."""

    def __init__(self, name: str, root: SpanHandle, previous_context: Context) -> None:
        self.name = name
        self.root = root
        self._previous_context = previous_context
        self._ended = False

    @property
    def trace_id(self) -> str:
        return self.root.trace_id

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def context(self) -> Context:
        """An OpenTelemetry context whose current span is the root."""
        return otel_trace.set_span_in_context(self.root.otel_span, Context())

    def __repr__(self) -> str:
        state = "ended" if self._ended else "open"
        return f"<Trace {self.name!r} trace_id={self.trace_id} {state}>"

    def span(self, name: str | None = None, type: str = "chain", **options: Any) -> SpanScope:
        """``span(trace=self, ...)``."""
        from .spans import span

        return span(self, name=name, type=type, **options)

    def annotate(self, **values: Any) -> None:
        """Annotate the root span."""
        self.root.annotate(**values)

    def end(self, output: Any = None, error: BaseException | str | None = None) -> None:
        end_trace(self, output=output, error=error)

    def __enter__(self) -> Trace:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if not self._ended:
            end_trace(self, error=exc)


def start_trace(name: str, input: Any = None, metadata: Mapping[str, Any] | None = None, *,
                type: str = "agent", session_id: str | None = None, user_id: str | None = None,
                tags: Sequence[str] | None = None,
                attributes: Mapping[str, Any] | None = None) -> Trace:
    """Open a new trace whose root span is ``name`` (an ``agent`` span unless ``type`` says
    otherwise). The root becomes the current span, so spans opened next nest under it."""
    span_type = check_type(type)
    otel_span = delivery.tracer().start_span(
        name, context=Context(), kind=otel_kind(span_type), attributes=type_attributes(span_type))
    root = SpanHandle(otel_span, span_type)
    for key, value in (("session.id", session_id), ("user.id", user_id)):
        if value is not None:
            root.set_attributes({key: value})
    if tags:
        root.set_attributes({"tag.tags": [str(tag) for tag in tags]})
    if attributes:
        root.set_attributes(attributes)
    if metadata:
        root.set_metadata(metadata)
    if input is not None:
        root.set_input(input)
    previous = otel_context.get_current()
    otel_context.attach(otel_trace.set_span_in_context(otel_span, previous))
    trace = Trace(name, root, previous)
    with _open_lock:
        _open_traces[trace.trace_id] = trace
    return trace


def end_trace(trace: Trace | None = None, output: Any = None,
              error: BaseException | str | None = None) -> None:
    """End ``trace`` (default: the current one): record its output, mark it failed when
    ``error`` is given, and make sure its spans are delivered before returning."""
    trace = trace if trace is not None else current_trace()
    if trace is None:
        raise ValueError("end_trace: no open trace; pass the Trace start_trace returned")
    if trace.ended:
        warnings.warn(f"halo_nb: trace {trace.name!r} already ended", stacklevel=2)
        return
    root = trace.root
    if output is not None:
        root.set_output(output)
    if error is not None and not isinstance(error, BaseException):
        root.set_error(str(error))
    root.set_attributes({rules.HALO_TRACE_ENDED: True})
    trace._ended = True
    with _open_lock:
        _open_traces.pop(trace.trace_id, None)
    if otel_trace.get_current_span() is root.otel_span:
        otel_context.attach(trace._previous_context)
    root.end(error if isinstance(error, BaseException) else None)
    delivery.flush()


def open_traces() -> list[Trace]:
    """Traces started and not yet ended (that something still refers to)."""
    with _open_lock:
        return list(_open_traces.values())


def current_trace() -> Trace | None:
    """The trace of the current span if it is open, else the only open trace."""
    current = otel_trace.get_current_span().get_span_context()
    with _open_lock:
        if current.is_valid:
            trace = _open_traces.get(format(current.trace_id, "032x"))
            if trace is not None:
                return trace
        traces = list(_open_traces.values())
    return traces[0] if len(traces) == 1 else None

