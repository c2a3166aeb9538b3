"""The write-ahead log behind ``durability = "sync"``: every appended batch is written to
a log segment and fsynced before the append returns, while Parquet parts keep being
written on the usual schedule (so sync costs one append-only write and one fsync per
group of requests, not a Parquet part per request, which would cost the background
merges and rewrites of hundreds of tiny parts).

Group commit: appends queue their entries (in version order, under the store's lock);
whoever takes the write lock writes every queued entry with one write and one fsync,
so concurrent appends share it. A segment is deleted once the parts written cover every
version it holds. A record is a magic number and its length followed by an Arrow IPC
stream; at start the records of every segment are read up to the first incomplete or
unreadable one (a write that did not finish was never acknowledged; what an fsync
acknowledged is intact, so records carry no checksum: computing one cost 2.4 us a span,
as much as serialising it).
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import polars as pl
import pyarrow as pa

from ..group_commit import GroupCommit, Ticket
from .parts import remove

log = logging.getLogger(__name__)

SEGMENT_GLOB = "wal-*.arrows"
_MAGIC = b"HWAL"
_HEADER = struct.Struct("<4sQ")
# Serialising a request's table on Arrow's thread pool cost more than it saved.
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(use_threads=False)


@dataclass(eq=False)
class WalEntry:
    """One append's spans (the native decoder's Arrow tables, or frames)."""

    tables: list[pa.Table | pl.DataFrame]
    version: int


@dataclass
class _Segment:
    path: Path
    max_version: int = 0
    file: BinaryIO | None = field(default=None, repr=False)


class WriteAheadLog:
    """The log segments of one store folder."""

    def __init__(self, folder: Path, first_sequence: int = 0) -> None:
        self.folder = folder
        self._sequence = first_sequence
        self._commits: GroupCommit[WalEntry] = GroupCommit(self._write_group)
        self._current: _Segment | None = None
        self._closed: list[_Segment] = []
        # Every version up to this one whose entry failed to be written.
        self.failed_through = 0

    def enqueue(self, tables: list[pa.Table | pl.DataFrame], version: int) -> Ticket[WalEntry]:
        """Queue a batch (call in version order, i.e. under the store's lock)."""
        return self._commits.enqueue(WalEntry(tables, version))

    def wait(self, ticket: Ticket[WalEntry]) -> None:
        """Return once the batch is written and fsynced; raise what failed (an OSError for
        a write or fsync that failed)."""
        self._commits.wait(ticket)

    def discard_covered(self, version: int) -> None:
        """Delete the segments whose every entry is in a written part (version <=
        ``version``); the current segment is closed first, so it goes too once covered."""
        with self._commits.lock:
            if self._current is not None and self._current.max_version <= version:
                self._close_current()
            kept = []
            for segment in self._closed:
                if segment.max_version <= version:
                    remove(segment.path)
                else:
                    kept.append(segment)
            self._closed = kept

    def adopt(self, paths: list[Path], version: int) -> None:
        """Take recovered segments over, as holding entries up to ``version``."""
        with self._commits.lock:
            self._closed.extend(_Segment(path, version) for path in paths)

    def close(self) -> None:
        with self._commits.lock:
            self._close_current()

    def _write_group(self, group: list[WalEntry]) -> None:
        try:
            self._write(group)
        except Exception:
            self.failed_through = max(self.failed_through, group[-1].version)
            self._close_current()  # its tail may hold half a record
            raise

    def _write(self, group: list[WalEntry]) -> None:
        records = [_record(table) for entry in group for table in entry.tables]
        if not records:
            return
        segment = self._open_segment()
        assert segment.file is not None
        for header, payload in records:
            segment.file.write(header)
            segment.file.write(payload)
        segment.file.flush()
        os.fsync(segment.file.fileno())
        if hasattr(os, "posix_fadvise"):  # read again only after a crash (see parts.py)
            os.posix_fadvise(segment.file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        segment.max_version = max(segment.max_version, group[-1].version)

    def _open_segment(self) -> _Segment:
        if self._current is None:
            self._sequence += 1
            path = self.folder / f"wal-{self._sequence:012d}.arrows"
            segment = _Segment(path, file=path.open("ab"))
            fd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(fd)  # the new segment's name is durable before anything counts on it
            finally:
                os.close(fd)
            self._current = segment
        return self._current

    def _close_current(self) -> None:
        segment, self._current = self._current, None
        if segment is None:
            return
        if segment.file is not None:
            try:
                segment.file.close()
            except OSError as exc:
                log.warning("halo_nb: closing %s: %s", segment.path, exc)
            segment.file = None
        self._closed.append(segment)


def recover(folder: Path) -> tuple[list[pa.Table], list[Path], int]:
    """The batches in the folder's log segments (each read up to its first incomplete or
    damaged record), the segment files, and the highest segment number."""
    tables: list[pa.Table] = []
    paths = sorted(folder.glob(SEGMENT_GLOB))
    for path in paths:
        data = path.read_bytes()
        offset = 0
        while offset + _HEADER.size <= len(data):
            magic, length = _HEADER.unpack_from(data, offset)
            start, end = offset + _HEADER.size, offset + _HEADER.size + length
            if magic != _MAGIC or end > len(data):
                break
            try:
                tables.append(pa.ipc.open_stream(data[start:end]).read_all())
            except pa.ArrowException:
                break
            offset = end
        if offset < len(data):
            log.warning("halo_nb: %s ends with %d bytes of an unfinished write (never "
                        "acknowledged); ignored", path.name, len(data) - offset)
    last = max((int(p.name[4:16]) for p in paths if p.name[4:16].isdigit()), default=0)
    return tables, paths, last


def _record(spans: pa.Table | pl.DataFrame) -> tuple[bytes, memoryview]:
    """A record's header and payload (the Arrow IPC stream, not copied again)."""
    table = spans if isinstance(spans, pa.Table) else spans.to_arrow()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_IPC_OPTIONS) as writer:
        writer.write_table(table)
    payload = memoryview(sink.getvalue())
    return _HEADER.pack(_MAGIC, len(payload)), payload
