"""Loading a store's parts at start: every readable part is loaded, every unreadable one
moved into ``quarantine/`` with a warning naming it and how many spans it held."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import polars as pl

from .chunks import ARRIVAL_SPREAD_NS, Chunk
from .parts import PART_MAX_ROWS, PartFolder, Quarantined, part_arrival_ns, remove
from .stored_form import ID_COLUMNS, ID_PAIR, conform

log = logging.getLogger(__name__)


@dataclass
class Loaded:
    chunks: list[Chunk] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)


def load_parts(folder: PartFolder) -> Loaded:
    """The parts' spans as chunks of about PART_MAX_ROWS spans (so no later rewrite merges
    all history into one file), each span once (a span left in two parts by an
    interrupted rewrite loads from the older part; a part holding only such spans is
    removed)."""
    folder.remove_temporary()
    loaded = Loaded()
    readable: list[tuple[pl.DataFrame, list]] = []
    for part in folder.listing():
        try:
            frame = _read(part)
        except Exception as exc:  # noqa: BLE001 - any damage: quarantine, load the rest
            loaded.quarantined.append(folder.quarantine(part, _reason(exc)))
            continue
        readable.append((frame, [part]))
    if loaded.quarantined:
        log.warning("halo_nb: %d unreadable part(s) moved to %s and not loaded: %s",
                    len(loaded.quarantined), folder.path / "quarantine",
                    "; ".join(q.describe() for q in loaded.quarantined))
    readable = _without_repeats(readable)
    group: list[tuple[pl.DataFrame, list]] = []
    rows = 0
    since = 0
    for frame, parts in readable:
        arrived = max(part_arrival_ns(p) for p in parts)
        if group and (rows + frame.height > PART_MAX_ROWS
                      or abs(arrived - since) > ARRIVAL_SPREAD_NS):
            loaded.chunks.append(_chunk(group))
            group, rows = [], 0
        if not group:
            since = arrived
        group.append((frame, parts))
        rows += frame.height
    if group:
        loaded.chunks.append(_chunk(group))
    return loaded


def _read(part) -> pl.DataFrame:
    frame = pl.read_parquet(part)
    missing = [c for c in ID_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"not a span part: no {', '.join(missing)} column")
    return conform(frame)


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _without_repeats(readable: list[tuple[pl.DataFrame, list]]) -> list[tuple[pl.DataFrame, list]]:
    if len(readable) < 2:
        return readable
    ids = pl.concat([frame.select(ID_COLUMNS) for frame, _ in readable], rechunk=False)
    first = ids.select(ID_PAIR.is_first_distinct())[:, 0]
    if first.all():
        return readable
    kept = []
    offset = 0
    for frame, parts in readable:
        mask = first.slice(offset, frame.height)
        offset += frame.height
        if mask.all():
            kept.append((frame, parts))
        elif mask.any():
            kept.append((frame.filter(mask), parts))
        else:
            for part in parts:
                remove(part)
    return kept


def _chunk(group: list[tuple[pl.DataFrame, list]]) -> Chunk:
    frames = [frame for frame, _ in group]
    frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical", rechunk=True)
    parts = [part for _, ps in group for part in ps]
    arrivals = [part_arrival_ns(p) for p in parts]
    return Chunk(frame, parts, max(arrivals), min(arrivals))
