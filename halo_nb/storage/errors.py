"""What the store raises: a lookup of an unknown trace, and the refusals a caller may
retry (the collector answers them with 503 and Retry-After)."""

from __future__ import annotations


class UnknownTraceError(KeyError):
    """No stored span has this trace id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown trace"


class StoreUnavailable(RuntimeError):
    """The store cannot take spans right now; nothing of the refused append was stored
    durably, and nothing stored before is lost. Retrying after ``retry_after_s`` may work."""

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StoreFull(StoreUnavailable):
    """The in-memory store is at its ceiling (``max_store_bytes``)."""


class StoreWriteFailed(StoreUnavailable):
    """With ``durability = "sync"``: the spans could not be written and fsynced (a full or
    read-only disk). They stay in memory and are written once the disk works again."""
