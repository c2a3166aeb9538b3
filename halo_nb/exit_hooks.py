"""Writing everything acknowledged when the process ends: an ``atexit`` hook, and a
SIGTERM handler where the process has none of its own.

Cooperation: a handler someone else installed (``halo serve`` installs one that stops
the collector and closes the store itself; an application may have its own) is left
alone; SIGTERM at its default action (a script, a Jupyter kernel: ipykernel leaves it
there) gets ours. The handler runs in the main thread, which may be inside the store,
holding one of its locks, when the signal arrives; so it does not write there but
starts a thread that writes everything and then re-sends SIGTERM with the default
action restored: the process still ends as killed by SIGTERM (what supervisors and
Jupyter expect), just after its spans are on disk. A second SIGTERM meanwhile ends it
at once. SIGKILL cannot be caught: what it loses is the README's "Durability" section.
"""

from __future__ import annotations

import atexit
import functools
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

_installed: set[Callable[[], None]] = set()
_lock = threading.Lock()


def install(shutdown: Callable[[], None]) -> None:
    """Run ``shutdown`` at normal exit and on SIGTERM (once per process per callback).
    The SIGTERM handler is installed only from the main thread and only over the
    default action."""
    with _lock:
        if shutdown in _installed:
            return
        _installed.add(shutdown)
    atexit.register(shutdown)
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, functools.partial(_on_sigterm, shutdown))
    except (ValueError, OSError):  # no signals here (an embedded interpreter, a sandbox)
        pass


def _on_sigterm(shutdown: Callable[[], None], signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_write_then_terminate, args=(shutdown,),
                     name="halo-sigterm-flush").start()


def _write_then_terminate(shutdown: Callable[[], None]) -> None:
    try:
        shutdown()
    finally:
        os.kill(os.getpid(), signal.SIGTERM)
