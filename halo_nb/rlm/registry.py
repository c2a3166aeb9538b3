"""The detector plugin API.

A detector is a small named function that looks at spans and returns ``Hit``s::

    from halo_nb.rlm import Hit, detector

    @detector("slow_guardrail", severity="low", scope="span", kinds=("guardrail",))
    def slow_guardrail(span, ctx):
        '''A guardrail span that took over two seconds.'''
        if (span.duration_ms or 0) > 2000:
            return Hit(span.span_id, "guardrail slower than 2 s", {"ms": span.duration_ms})

``scope="span"`` functions get ``(span, ctx)`` for every span (of ``kinds``, if given);
``ctx`` is a ``NodeContext`` (the trace, the summaries of the span's children, its layer).
``scope="trace"`` functions get the ``TraceView`` once per trace. Either may return
None, a message string (a hit on the span itself, span scope only), a ``Hit`` or an
iterable of ``Hit``s.

Other packages add detectors through the entry-point group ``halo_nb.detectors``: each
entry point names a module (importing it runs its ``@detector`` decorators) or a
callable that is called once with no arguments. They load on first use.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

SEVERITIES = ("info", "low", "medium", "high", "critical")
SCOPES = ("span", "trace")
ENTRY_POINT_GROUP = "halo_nb.detectors"


@dataclass(frozen=True)
class Hit:
    """One signal a detector found.

    ``evidence`` holds values (numbers, ids, short strings), not prose. ``key`` is the
    part of the signature beyond detector and span path (volatile parts are masked
    later). ``follows`` lists span ids of earlier findings this one follows from, so
    the correlator can chain cause and consequence within a trace.
    """

    span_id: str
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    key: str = ""
    severity: str | None = None
    follows: tuple[str, ...] = ()


@dataclass(frozen=True)
class Detector:
    name: str
    func: Callable[..., Any]
    severity: str
    scope: str
    kinds: frozenset[str] | None
    description: str
    hypothesis: str | None = None
    fix: str | None = None
    requires: str | None = None


_lock = threading.RLock()
_registry: dict[str, Detector] = {}
_loaded = False
_load_errors: list[str] = []


def detector(
    name: str,
    *,
    severity: str = "medium",
    scope: str = "span",
    kinds: Iterable[str] | None = None,
    hypothesis: str | None = None,
    fix: str | None = None,
    requires: str | None = None,
    replace: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as detector ``name``.

    ``hypothesis`` and ``fix`` are the rule text used for clusters that this detector
    starts (built-in detectors have rules in ``hypotheses.py``). ``requires`` names a
    span field that must be true for a span-scope detector to be called (a prefilter
    computed for the whole corpus at once: ``failed``, ``unended``, ``lat_outlier``,
    ``tok_outlier``, ``fw_candidate``). ``replace=True`` overrides an existing detector.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        register(Detector(
            name=name, func=func, severity=severity, scope=scope,
            kinds=frozenset(kinds) if kinds is not None else None,
            description=(func.__doc__ or "").strip().split("\n")[0],
            hypothesis=hypothesis, fix=fix, requires=requires,
        ), replace=replace)
        return func

    return decorate


def register(det: Detector, *, replace: bool = False) -> None:
    if not det.name or not isinstance(det.name, str):
        raise ValueError("detector name: must be a non-empty string")
    if det.severity not in SEVERITIES:
        raise ValueError(f"detector {det.name!r}: severity must be one of {SEVERITIES}, "
                         f"got {det.severity!r}")
    if det.scope not in SCOPES:
        raise ValueError(f"detector {det.name!r}: scope must be one of {SCOPES}, "
                         f"got {det.scope!r}")
    with _lock:
        existing = _registry.get(det.name)
        if existing is not None and not replace and existing.func is not det.func:
            raise ValueError(f"detector {det.name!r} is already registered "
                             "(pass replace=True to override it)")
        _registry[det.name] = det


def unregister(name: str) -> None:
    """Remove a detector (no error if it is not registered)."""
    with _lock:
        _registry.pop(name, None)


def registered() -> list[Detector]:
    """Every registered detector, built-ins and plugins, in name order."""
    _ensure_loaded()
    with _lock:
        return [_registry[name] for name in sorted(_registry)]


def get(name: str) -> Detector | None:
    _ensure_loaded()
    return _registry.get(name)


def load_errors() -> list[str]:
    """Entry points that failed to load, as 'name: error' lines."""
    _ensure_loaded()
    return list(_load_errors)


def _ensure_loaded() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        importlib.import_module(f"{__package__}.detectors")  # registers the built-ins

        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                         key=lambda e: e.name):
            try:
                loaded = ep.load()
                registered = any(d.func is loaded for d in _registry.values())
                if callable(loaded) and not isinstance(loaded, ModuleType) and not registered:
                    loaded()
            except Exception as exc:  # a broken plugin must not break the analysis
                message = f"{ep.name} ({ep.value}): {type(exc).__name__}: {exc}"
                _load_errors.append(message)
                warnings.warn(f"halo_nb detector plugin failed to load: {message}",
                              stacklevel=2)


def reload_plugins() -> None:
    """Load entry points again (after installing a plugin package in a running kernel)."""
    global _loaded
    with _lock:
        _loaded = False
        _load_errors.clear()
    _ensure_loaded()
