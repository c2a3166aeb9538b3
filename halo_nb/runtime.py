"""The process-wide state behind the public API: settings, the span store,
the running collector and the latest analysis result. One per kernel."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .config import Settings, load_settings

if TYPE_CHECKING:
    from .ingest.server import Collector
    from .storage.store import SpanStore

_lock = threading.RLock()
_settings: Settings | None = None
_store: SpanStore | None = None
_collector: Collector | None = None
_last_analysis: Any = None


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
        storage_changed = (new.storage_path, new.persist, new.max_retention_days) != (
            old.storage_path, old.persist, old.max_retention_days)
        if storage_changed or (new.host, new.port, new.max_body_bytes) != (
                old.host, old.port, old.max_body_bytes):
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
                               retention_days=s.max_retention_days)
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
        _collector = Collector(store(), host=s.host, port=s.port, max_body_bytes=s.max_body_bytes)
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
    global _last_analysis
    _last_analysis = result


def last_analysis() -> Any:
    return _last_analysis


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
