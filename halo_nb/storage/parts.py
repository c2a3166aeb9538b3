"""Parquet part files: writing one atomically, reading one back, moving a bad one aside.

A part's name says when it was written, how many spans it holds and when the newest of
them arrived: ``part-<written ns>-<pid>-<random>-<rows>r-<arrived ns>a[-hot].parquet``.
The span count lets a quarantine warning say what a damaged file held; the arrival time
is what retention ages by, and survives rewrites (a rewrite keeps the inputs' arrival).
Parts written before names carried these fields count as arrived when written.

Parts are written to a temporary file, fsynced and ``os.replace``-d into place, so a
crash leaves either the old parts or the new one, never half a file. Hot parts (written
while spans stream in) are uncompressed; cold ones are zstd, at most ``PART_MAX_ROWS``
spans each, so one damaged file costs a bounded share of the history.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import polars as pl

log = logging.getLogger(__name__)

PART_GLOB = "part-*.parquet"
HOT_SUFFIX = "-hot.parquet"
QUARANTINE = "quarantine"
# A cold part holds at most this many spans (about 60 MB of zstd at 300 bytes a span).
PART_MAX_ROWS = 200_000
_NAME = re.compile(r"^part-(\d+)-\d+-[0-9a-f]+(?:-(\d+)r-(\d+)a)?(?:-hot)?\.parquet$")


class PartWriteError(OSError):
    """Writing a part failed (Polars reports a full disk as a ComputeError; callers
    handle every write failure as the OSError it is)."""


class PartVerifyError(OSError):
    """A part just written did not read back as the spans written into it."""


@dataclass(frozen=True)
class Quarantined:
    """A part that could not be loaded, moved to ``moved_to`` (None if even moving failed)."""

    name: str
    moved_to: Path | None
    spans: int | None
    reason: str

    def describe(self) -> str:
        held = f"{self.spans:,} spans" if self.spans is not None else "span count unknown"
        return f"{self.name} ({held}): {self.reason}"


def is_hot(part: Path) -> bool:
    return part.name.endswith(HOT_SUFFIX)


def part_rows(part: Path) -> int | None:
    """The span count the part's name records (None for older names)."""
    match = _NAME.match(part.name)
    return int(match[2]) if match and match[2] else None


def part_arrival_ns(part: Path) -> int:
    """When the newest span of the part arrived (for older names: when it was written)."""
    match = _NAME.match(part.name)
    if match is None:
        return part.stat().st_mtime_ns
    return int(match[3] or match[1])


class PartFolder:
    """The folder of one store's parts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def listing(self) -> list[Path]:
        """Every part, oldest written first."""
        return sorted(self.path.glob(PART_GLOB))

    def remove_temporary(self) -> None:
        """Delete half-written parts a crash left behind."""
        for stale in self.path.glob(".part-*.tmp"):
            remove(stale)

    def write(self, frame: pl.DataFrame, *, hot: bool, arrived_ns: int) -> Path:
        """Write ``frame`` as a new part, fsynced before it appears under its name:
        uncompressed when ``hot`` (encoding is the largest CPU cost of ingest at full
        rate), else zstd level 1, which holds this data in 57% of LZ4's bytes."""
        suffix = HOT_SUFFIX if hot else ".parquet"
        name = (f"part-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                f"-{frame.height}r-{arrived_ns}a{suffix}")
        final = self.path / name
        temp = self.path / f".{name}.tmp"
        try:
            try:
                if hot:
                    frame.write_parquet(temp, compression="uncompressed", statistics=False)
                else:
                    frame.write_parquet(temp, compression="zstd", compression_level=1,
                                        statistics=False)
            except pl.exceptions.PolarsError as exc:
                raise PartWriteError(f"cannot write {name}: {exc}") from exc
            with temp.open("rb") as fh:
                os.fsync(fh.fileno())
                _drop_cached_pages(fh.fileno())
            os.replace(temp, final)
        except BaseException:
            remove(temp)
            raise
        _fsync_folder(self.path)
        return final

    def write_verified(self, frame: pl.DataFrame, arrived_ns: int) -> list[Path]:
        """Write ``frame`` as cold parts of at most PART_MAX_ROWS spans, each read back
        and compared with what was written before this returns; on any failure the new
        parts are removed and the error raised, so the caller's inputs stay in place."""
        written: list[Path] = []
        try:
            for offset in range(0, frame.height, PART_MAX_ROWS):
                piece = frame.slice(offset, PART_MAX_ROWS)
                part = self.write(piece, hot=False, arrived_ns=arrived_ns)
                written.append(part)
                _verify(part, piece)
        except BaseException:
            for part in written:
                remove(part)
            raise
        return written

    def quarantine(self, part: Path, reason: str) -> Quarantined:
        """Move an unreadable part into ``quarantine/`` beside the parts."""
        spans = part_rows(part)
        folder = self.path / QUARANTINE
        target = folder / part.name
        try:
            folder.mkdir(exist_ok=True)
            if target.exists():
                target = folder / f"{part.stem}-{uuid.uuid4().hex[:8]}{part.suffix}"
            os.replace(part, target)
        except OSError as exc:
            log.warning("halo_nb: cannot move %s aside: %s", part, exc)
            return Quarantined(part.name, None, spans, reason)
        return Quarantined(part.name, target, spans, reason)


def remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _verify(part: Path, frame: pl.DataFrame) -> None:
    try:
        back = pl.read_parquet(part)
    except pl.exceptions.PolarsError as exc:
        raise PartVerifyError(f"{part.name} does not read back: {exc}") from exc
    if back.height != frame.height or not (
            back["span_id"].equals(frame["span_id"])
            and back["trace_id"].equals(frame["trace_id"])):
        raise PartVerifyError(f"{part.name} read back as {back.height} spans, not the "
                              f"{frame.height} written")


def _fsync_folder(folder: Path) -> None:
    """Make a rename into ``folder`` durable (the new name is in the directory's data)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _drop_cached_pages(fd: int) -> None:
    """Let the kernel reuse a written part's page cache at once: a part is read again only
    at the next start, and a page cache that keeps every part written grows into fresh
    memory, which on the benchmark VM costs up to 8 times the CPU of writing into pages
    just freed (writing 200 MB: 1.8-4.1 ms a MB kept, 0.43 ms a MB dropped)."""
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
