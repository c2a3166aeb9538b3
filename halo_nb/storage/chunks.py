"""A sealed chunk: spans held in memory as one rechunked frame, with the Parquet parts
on disk that hold them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from .parts import PART_MAX_ROWS, is_hot

# Chunks merge only while their spans arrived within this span of time, so retention
# (which ages a chunk's traces by its newest arrival) keeps a trace at most this much
# longer than asked.
ARRIVAL_SPREAD_NS = 86_400 * 10**9


@dataclass
class Chunk:
    """``frame``'s spans are all in ``parts``; a part may also hold spans another chunk
    holds (left over from an interrupted rewrite), never spans no chunk holds.
    ``arrived_ns``: when the newest of its spans arrived (what retention ages by);
    ``first_arrived_ns``: when the oldest did."""

    frame: pl.DataFrame
    parts: list[Path] = field(default_factory=list)
    arrived_ns: int = 0
    first_arrived_ns: int = 0

    @property
    def compact(self) -> bool:
        """Held on disk in as few compressed parts as the part size allows."""
        wanted = max(1, -(-self.frame.height // PART_MAX_ROWS))
        return len(self.parts) == wanted and not any(is_hot(p) for p in self.parts)


def arrived_together(older: Chunk, newer: Chunk) -> bool:
    """Whether the two chunks' spans all arrived within ARRIVAL_SPREAD_NS."""
    return (max(older.arrived_ns, newer.arrived_ns)
            - min(older.first_arrived_ns, newer.first_arrived_ns)) <= ARRIVAL_SPREAD_NS


def merged(older: Chunk, newer: Chunk) -> Chunk:
    """One chunk holding both (in memory; on disk they keep their parts)."""
    frame = pl.concat([older.frame, newer.frame], how="vertical", rechunk=True)
    return Chunk(frame, older.parts + newer.parts, max(older.arrived_ns, newer.arrived_ns),
                 min(older.first_arrived_ns, newer.first_arrived_ns))
