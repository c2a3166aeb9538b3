"""``span(...)``: one object that is a context manager (sync and async) and a
decorator for functions, coroutines and (async) generators."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.context import Context

from ..ingest import rules
from . import delivery
from .handle import SpanHandle, check_type, otel_kind, type_attributes
from .traces import Trace, current_trace

F = TypeVar("F", bound=Callable[..., Any])


class SpanScope:
    """What ``span(...)`` returns. ``with`` / ``async with`` open one span and yield its
    :class:`SpanHandle`; as a decorator every call gets its own span, with the call's
    arguments as input and its return value (or yielded items) as output."""

    def __init__(self, trace: Trace | None, name: str | None, span_type: str,
                 metadata: Mapping[str, Any] | None, input: Any, model: str | None,
                 tool_name: str | None, attributes: Mapping[str, Any] | None,
                 capture_input: bool, capture_output: bool) -> None:
        self._trace = trace
        self._name = name
        self._type = span_type
        self._metadata = metadata
        self._input = input
        self._model = model
        self._tool_name = tool_name
        self._attributes = attributes
        self._capture_input = capture_input
        self._capture_output = capture_output
        self._entered: contextvars.ContextVar[tuple[contextlib.AbstractContextManager, ...]] = (
            contextvars.ContextVar(f"halo_span_scope_{id(self)}", default=()))

    def __repr__(self) -> str:
        return f"<span {self._type} {self._name!r}>"

    def __enter__(self) -> SpanHandle:
        scope = self._activate(self._name or self._type, self._input)
        handle = scope.__enter__()
        self._entered.set((*self._entered.get(), scope))
        return handle

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        *rest, scope = self._entered.get()
        self._entered.set(tuple(rest))
        scope.__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> SpanHandle:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        if not callable(func):
            raise TypeError(f"span(...) decorates callables, got {func!r}")
        name = self._name or getattr(func, "__qualname__", None) or repr(func)
        signature = _signature(func)
        if inspect.isasyncgenfunction(func):
            wrapper: Callable[..., Any] = self._wrap_async_generator(func, name, signature)
        elif inspect.isgeneratorfunction(func):
            wrapper = self._wrap_generator(func, name, signature)
        elif inspect.iscoroutinefunction(func):
            wrapper = self._wrap_coroutine(func, name, signature)
        else:
            wrapper = self._wrap_function(func, name, signature)
        return functools.wraps(func)(wrapper)  # type: ignore[return-value]

    def _wrap_function(self, func: Callable[..., Any], name: str,
                       signature: inspect.Signature | None) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._activate(name, self._call_input(signature, args, kwargs)) as handle:
                result = func(*args, **kwargs)
                self._record_output(handle, result)
                return result

        return call

    def _wrap_coroutine(self, func: Callable[..., Any], name: str,
                        signature: inspect.Signature | None) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            with self._activate(name, self._call_input(signature, args, kwargs)) as handle:
                result = await func(*args, **kwargs)
                self._record_output(handle, result)
                return result

        return call

    def _wrap_generator(self, func: Callable[..., Any], name: str,
                        signature: inspect.Signature | None) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Iterator[Any]:
            handle = self._open(name, self._call_input(signature, args, kwargs))
            items: list[Any] = []
            try:
                generator = func(*args, **kwargs)
                step, value = generator.send, None
                while True:
                    try:
                        with _current(handle):
                            item = step(value)
                    except StopIteration:
                        break
                    items.append(item)
                    try:
                        value, step = (yield item), generator.send
                    except GeneratorExit:
                        generator.close()
                        raise
                    except BaseException as thrown:  # noqa: BLE001 - forwarded to the generator
                        step, value = generator.throw, thrown
            except GeneratorExit:  # the consumer stopped early: what it took is the output
                self._record_output(handle, _joined(items))
                handle.end()
                raise
            except BaseException as exc:
                handle.end(exc)
                raise
            self._record_output(handle, _joined(items))
            handle.end()

        return call

    def _wrap_async_generator(self, func: Callable[..., Any], name: str,
                              signature: inspect.Signature | None) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            handle = self._open(name, self._call_input(signature, args, kwargs))
            items: list[Any] = []
            try:
                generator = func(*args, **kwargs)
                step, value = generator.asend, None
                while True:
                    try:
                        with _current(handle):
                            item = await step(value)
                    except StopAsyncIteration:
                        break
                    items.append(item)
                    try:
                        value, step = (yield item), generator.asend
                    except GeneratorExit:
                        await generator.aclose()
                        raise
                    except BaseException as thrown:  # noqa: BLE001 - forwarded to the generator
                        step, value = generator.athrow, thrown
            except GeneratorExit:  # the consumer stopped early: what it took is the output
                self._record_output(handle, _joined(items))
                handle.end()
                raise
            except BaseException as exc:
                handle.end(exc)
                raise
            self._record_output(handle, _joined(items))
            handle.end()

        return call

    @contextlib.contextmanager
    def _activate(self, name: str, input: Any) -> Iterator[SpanHandle]:
        """Open a span, make it current while the block runs, end it (failed on an error)."""
        handle = self._open(name, input)
        try:
            with _current(handle):
                yield handle
        except BaseException as exc:
            handle.end(exc)
            raise
        handle.end()

    def _open(self, name: str, input: Any) -> SpanHandle:
        otel_span = delivery.tracer().start_span(
            name, context=_parent_context(self._trace), kind=otel_kind(self._type),
            attributes=type_attributes(self._type))
        handle = SpanHandle(otel_span, self._type)
        if self._type == "tool" or self._tool_name is not None:
            handle.set_tool(self._tool_name or name)
        if self._model is not None:
            handle.set_model(self._model)
        if self._attributes:
            handle.set_attributes(self._attributes)
        if self._metadata:
            handle.set_metadata(self._metadata)
        if input is not None:
            handle.set_input(input)
        return handle

    def _call_input(self, signature: inspect.Signature | None, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        if self._input is not None:
            return self._input
        if not self._capture_input:
            return None
        return _arguments(signature, args, kwargs)

    def _record_output(self, handle: SpanHandle, result: Any) -> None:
        if self._capture_output and result is not None:
            handle.set_output(result)


def span(trace: Trace | str | Callable[..., Any] | None = None, name: str | None = None,
         type: str = "chain", metadata: Mapping[str, Any] | None = None, input: Any = None, *,
         model: str | None = None, tool_name: str | None = None,
         attributes: Mapping[str, Any] | None = None, capture_input: bool = True,
         capture_output: bool = True) -> Any:
    """A span of ``type`` (agent, chain, llm, tool, retriever, embedding, reranker,
    guardrail, evaluator). Without ``trace`` it nests under the current span, else
    under the only open trace, else it starts a trace of its own.

    ``with span(t, name="plan", type="llm", model="gpt-4o") as s: s.set_output(...)``,
    ``@span(type="tool")``, bare ``@span``, and ``span("name", ...)`` all work.
    """
    span_type = check_type(type)
    if isinstance(trace, str):
        if name is not None:
            raise TypeError("span(): pass a Trace (or nothing) first, or the name, not both")
        trace, name = None, trace
    if callable(trace) and not isinstance(trace, Trace):
        return SpanScope(None, name, span_type, metadata, input, model, tool_name, attributes,
                         capture_input, capture_output)(trace)
    if trace is not None and not isinstance(trace, Trace):
        raise TypeError(f"span(): trace must be a Trace from start_trace or None, got {trace!r}")
    return SpanScope(trace, name, span_type, metadata, input, model, tool_name, attributes,
                     capture_input, capture_output)


def current_span() -> SpanHandle | None:
    """The span new work would nest under: the current span, else the only open trace's root."""
    current = otel_trace.get_current_span()
    if current.is_recording():
        span_type = (getattr(current, "attributes", None) or {}).get(rules.HALO_KIND, "unknown")
        return SpanHandle(current, str(span_type))
    trace = current_trace()
    return trace.root if trace is not None and not trace.root.ended else None


def annotate(**values: Any) -> None:
    """Label the current span (scores, verdicts, notes): a ``halo.annotation`` event plus
    ``halo.annotation.<key>`` attributes. Outside any span it warns and records nothing."""
    handle = current_span()
    if handle is None:
        warnings.warn("halo_nb.annotate: no current span or open trace; nothing recorded",
                      stacklevel=2)
        return
    handle.annotate(**values)


def _parent_context(trace: Trace | None) -> Context:
    current = otel_trace.get_current_span()
    context = current.get_span_context()
    live = context.is_valid and (current.is_recording() or context.is_remote)
    if trace is not None:
        if live and format(context.trace_id, "032x") == trace.trace_id:
            return otel_context.get_current()
        if trace.ended:
            warnings.warn(f"halo_nb: trace {trace.name!r} already ended; the span still joins it",
                          stacklevel=4)
        return trace.context
    if live:
        return otel_context.get_current()
    only = current_trace()
    return only.context if only is not None else Context()


@contextlib.contextmanager
def _current(handle: SpanHandle) -> Iterator[None]:
    token = otel_context.attach(otel_trace.set_span_in_context(handle.otel_span))
    try:
        yield
    finally:
        otel_context.detach(token)


def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None


def _arguments(signature: inspect.Signature | None, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by parameter name (``self``/``cls`` left out, ``**kwargs`` inlined)."""
    if signature is None:
        return {"args": list(args), **kwargs}
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return {"args": list(args), **kwargs}
    params = list(signature.parameters.values())
    values: dict[str, Any] = {}
    for key, value in bound.arguments.items():
        param = signature.parameters[key]
        if param is params[0] and key in ("self", "cls"):
            continue
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            values.update(value)
        else:
            values[key] = value
    return values


def _joined(items: list[Any]) -> Any:
    """Streamed text chunks read best joined; anything else as the list of items."""
    if items and all(isinstance(item, str) for item in items):
        return "".join(items)
    return items or None
