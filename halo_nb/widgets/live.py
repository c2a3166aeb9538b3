"""Coalescing store notifications into at most a few view refreshes per second.

``SpanStore.subscribe`` calls back from the collector thread after every append. The
refresh runs on a short-lived timer thread, never on the collector's and never on the
kernel's main thread, so neither ingest nor a busy cell waits on the browser. Sending a
comm message from that thread is safe: ipykernel publishes IOPub messages through its
own IOPub thread. The widgets send live data as custom messages (never as synced
traitlets, whose echo bookkeeping is not thread-safe), under one lock per widget.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

REFRESH_INTERVAL_S = 0.25


class Throttle:
    """Runs ``action`` after ``notify()``, at most once per ``interval`` seconds; any number
    of notifications while one run is pending or running lead to one more run."""

    def __init__(self, action: Callable[[], None], interval: float = REFRESH_INTERVAL_S) -> None:
        self.action = action
        self.interval = interval
        self._lock = threading.Lock()
        self._running = threading.Lock()
        self._timer: threading.Timer | None = None
        self._last_end = 0.0
        self._closed = False

    def notify(self, *_: object) -> None:
        with self._lock:
            if self._closed or self._timer is not None:
                return
            delay = max(0.0, self._last_end + self.interval - time.monotonic())
            self._timer = threading.Timer(delay, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._running:
            # A timer set while the previous run was still going waits out the interval here;
            # notifications meanwhile find the timer pending and are coalesced into this run.
            wait = self._last_end + self.interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            with self._lock:
                self._timer = None
                if self._closed:
                    return
            try:
                self.action()
            except Exception:
                log.exception("halo_nb: live view refresh failed")
            finally:
                self._last_end = time.monotonic()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
