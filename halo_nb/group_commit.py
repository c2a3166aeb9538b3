"""Group commit: concurrent callers' items handled together by whichever caller gets there
first, each caller returning only once its own item is done.

Items queue up (``enqueue``); a caller that ``wait``s takes the run lock and, unless an
earlier run already took its item, runs every queued item as one group. A failure of the
group is every member's failure: each waiting caller raises it, so no caller returns as
if its item were done when the group's run raised. The collector groups concurrent
requests' appends to the store this way, and the write-ahead log their writes and fsyncs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(eq=False)
class Ticket(Generic[T]):
    """One queued item and, once its group ran, how that went."""

    item: T
    done: bool = False
    error: Exception | None = None


class GroupCommit(Generic[T]):
    """Runs queued items in groups with ``run(items)``, one group at a time."""

    def __init__(self, run: Callable[[list[T]], object]) -> None:
        self._run = run
        self._queue: list[Ticket[T]] = []
        self._queue_lock = threading.Lock()
        # Held while a group runs; hold it to keep a run from starting meanwhile.
        self.lock = threading.Lock()

    def enqueue(self, item: T) -> Ticket[T]:
        """Queue ``item``; groups run items in the order they were queued."""
        ticket = Ticket(item)
        with self._queue_lock:
            self._queue.append(ticket)
        return ticket

    def wait(self, ticket: Ticket[T]) -> None:
        """Return once ``ticket``'s group has run; raise what the group's run raised."""
        with self.lock:
            if not ticket.done:
                with self._queue_lock:
                    group, self._queue = self._queue, []
                try:
                    self._run([queued.item for queued in group])
                except Exception as exc:
                    for queued in group:
                        queued.error = exc
                finally:
                    for queued in group:
                        queued.done = True
        if ticket.error is not None:
            raise ticket.error

    def submit(self, item: T) -> None:
        """``enqueue`` then ``wait``."""
        self.wait(self.enqueue(item))
