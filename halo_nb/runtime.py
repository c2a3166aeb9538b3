"""The process-wide state behind the public API: settings, the span store,
the running collector and the latest analysis result. One per kernel.

At process exit (normal exit, and SIGTERM where nothing else handles it) everything
acknowledged is written: buffered SDK spans are handed to the store, the collector
stops taking requests, and the store writes what it holds. See ``exit_hooks``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import exit_hooks
from .config import (
    COLLECTOR_SETTINGS,
    STORE_SETTINGS,
    Settings,
    load_settings,
    store_memory_ceiling,
)

if TYPE_CHECKING:
    from .ingest.server import Collector
    from .storage.store import SpanStore

_lock = threading.RLock()
_settings: Settings | None = None
_store: SpanStore | None = None
_collector: Collector | None = None
_last_analysis: Any = None
_analysis_listeners: dict[object, Callable[[], None]] = {}
# Called first by ``shutdown`` (e.g. the SDK hands its buffered spans to the store).
_before_shutdown: list[Callable[[], None]] = []


def settings() -> Settings:
    global _settings
    with _lock:
        if _settings is None:
            _settings = load_settings()
        return _settings


def configure(**overrides: Any) -> Settings:
    """Change settings for this process. Changing storage drops the in-memory store
    (it reloads from the new path on next use); a running collector is stopped."""
    global _settings, _store
    with _lock:
        old = settings()
        new = old.replace(**overrides)
        storage_changed = new.differs(old, STORE_SETTINGS)
        if storage_changed or new.differs(old, COLLECTOR_SETTINGS):
            stop()
        if storage_changed and _store is not None:
            _store.close()
            _store = None
        _settings = new
        return new


def store() -> SpanStore:
    global _store
    with _lock:
        if _store is None:
            from .storage.store import SpanStore

            s = settings()
            _store = SpanStore(s.storage_path if s.persist else None,
                               retention_days=s.max_retention_days,
                               durability=s.durability if s.persist else "async",
                               max_bytes=store_memory_ceiling(s))
            exit_hooks.install(shutdown)
        return _store


def serve(**overrides: Any) -> Collector:
    """Start the collector (or return the running one)."""
    global _collector
    with _lock:
        if overrides:
            configure(**overrides)
        if _collector is not None and _collector.running:
            return _collector
        from .ingest.server import Collector

        s = settings()
        _collector = Collector.from_settings(store(), s)
        _collector.start()
        return _collector


def collector() -> Collector | None:
    return _collector


def stop() -> None:
    global _collector
    with _lock:
        if _collector is not None:
            _collector.stop()
            _collector = None


def set_last_analysis(result: Any) -> None:
    """Keep ``result`` as the session's latest analysis and tell the views that follow it."""
    global _last_analysis
    _last_analysis = result
    for callback in list(_analysis_listeners.values()):
        try:
            callback()
        except Exception:  # noqa: BLE001 - one view's failure must not stop analyze()
            import logging

            logging.getLogger(__name__).exception("halo_nb: a view failed to follow the "
                                                  "new analysis")


def follow_analyses(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback()`` after every ``set_last_analysis``; returns a function that
    stops it."""
    token = object()
    _analysis_listeners[token] = callback

    def unfollow() -> None:
        _analysis_listeners.pop(token, None)

    return unfollow


def last_analysis() -> Any:
    return _last_analysis


def before_shutdown(callback: Callable[[], None]) -> None:
    """Run ``callback`` at the start of every ``shutdown`` (once per callback)."""
    with _lock:
        if callback not in _before_shutdown:
            _before_shutdown.append(callback)


def shutdown() -> None:
    """Write everything acknowledged so far: the SDK's buffered spans, then the spans of
    requests the collector answered, then the store's pending spans (process exit)."""
    for callback in list(_before_shutdown):
        try:
            callback()
        except Exception as exc:  # noqa: BLE001 - the store must still be written
            import logging

            logging.getLogger(__name__).warning("halo_nb: at exit: %s", exc)
    with _lock:
        stop()
        if _store is not None:
            _store.close()


def reset() -> None:
    """Stop the collector and forget settings, store and analysis (tests, `%halo stop`)."""
    global _settings, _store, _last_analysis
    with _lock:
        stop()
        if _store is not None:
            _store.close()
        _settings = None
        _store = None
        _last_analysis = None
