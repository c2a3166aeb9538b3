"""SpanStore: the span frame in memory, persisted as append-only Parquet parts.

Appends are short and thread-safe (the collector thread calls them while the
kernel reads). Reads return snapshots: a Polars frame the caller may keep or
mutate without touching the store.

The jobs live in their own modules: ``stored_form`` (the in-memory column types),
``key_index`` (the duplicate check's key set), ``chunks`` (sealed frames and their
parts), ``parts`` (writing, reading back and quarantining Parquet files), ``loading``
(start-up), ``retention`` (which traces expire). This module ties them together.

Memory layout: ``_pending`` holds the batches appended since the last flush, as
appended (``SpanBatch``: a SPAN_SCHEMA frame or the native decoder's Arrow table, with
its duplicate keys and trace ids, so that an append makes no Polars call);
``_sealed`` holds larger rechunked frames (``Chunk``), each backed by the Parquet parts
that hold its spans. A background thread seals pending frames every ``FLUSH_INTERVAL_S``
(writing them as one new part), merges small sealed frames in memory, and rewrites a
frame spread over many parts as few parts, so neither the number of in-memory chunks
nor the number of files grows with every request, and no span is rewritten often.

Durability: with ``durability="async"`` (the default) an append returns once the spans
are in memory and the background thread writes them within ``FLUSH_INTERVAL_S``; with
``"sync"`` an append returns only after its spans are in the fsynced write-ahead log
(``wal``: a group commit, so concurrent appends share one write and one fsync), and
parts are written on the same schedule as in async mode. ``close()`` (and the
process-exit hooks in ``runtime``) write everything.

Hot and cold parts: the part written at each flush is uncompressed, because encoding
Parquet is the largest CPU cost of ingesting at full rate and compression is much of it
(a part cost 3.5 us a span to write with LZ4, 2.0 uncompressed). Once no span has arrived
for ``IDLE_COMPACT_S``, the background thread rewrites every chunk still held in hot
parts as zstd parts of at most ``PART_MAX_ROWS`` spans (300 bytes a span on disk instead
of 1,540), one chunk at a time; so does any other rewrite (a crowded chunk, retention).
A rewrite reads its parts back before it removes its inputs.

Retention drops whole live-ingested traces none of whose spans arrived within
``retention_days``, at load and then every ``RETENTION_INTERVAL_S``; imported
snapshots are kept.

Memory ceiling: past ``max_bytes`` of in-memory spans an append raises ``StoreFull``
(the collector answers 503 with Retry-After) and stores nothing.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from ..group_commit import Ticket
from ..ingest.span_batch import SpanBatch, frame_of, span_keys
from ..schema import empty_spans
from .chunks import Chunk, arrived_together, merged
from .errors import StoreFull, StoreWriteFailed, UnknownTraceError
from .key_index import KeyIndex
from .loading import load_parts
from .parts import PART_MAX_ROWS, PartFolder, Quarantined, remove
from .retention import expired_traces
from .stored_form import ID_COLUMNS, ID_PAIR, batch_bytes, conform, expand, span_frame, stored_form
from .traces_summary import summarise_traces, update_summary
from .wal import WalEntry, WriteAheadLog, recover

__all__ = ["SpanStore", "UnknownTraceError", "DURABILITY_MODES"]

log = logging.getLogger(__name__)

DURABILITY_MODES = ("async", "sync")
FLUSH_INTERVAL_S = 0.25
# Longest wait between background flush attempts after failures.
RETRY_MAX_S = 30.0
# After a failed write, sync appends fail fast for this long instead of each retrying it.
SYNC_RETRY_S = 1.0
RETENTION_INTERVAL_S = 60.0
# Sealed chunks merge pairwise while the newer is at least half the older, up to this size.
MERGE_LIMIT_ROWS = PART_MAX_ROWS
# A sealed chunk spread over this many Parquet parts is rewritten as few.
COMPACT_PARTS = 16
# After this long without a new span, hot (uncompressed) parts are rewritten compressed.
IDLE_COMPACT_S = 2.0


class SpanStore:
    """Spans in memory (Polars) and, when ``path`` is given, on disk (Parquet parts).

    ``durability``: "async" (written within FLUSH_INTERVAL_S) or "sync" (an append
    returns after its spans are fsynced). ``max_bytes``: the ceiling of in-memory spans
    (None: no ceiling)."""

    def __init__(self, path: Path | str | None, retention_days: float | None = None, *,
                 durability: str = "async", max_bytes: int | None = None) -> None:
        if path is not None and not str(path).strip():
            raise ValueError("storage path is empty; give a folder (or None for memory only)")
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {DURABILITY_MODES}, got {durability!r}")
        self.path = Path(path) if path is not None else None
        self.retention_days = retention_days
        self.durability = durability
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._sealed: list[Chunk] = []
        self._pending: list[SpanBatch] = []
        # The span keys (span_batch.span_keys) already stored: a compact first check for
        # duplicates (exporter retries); a hit is confirmed against the stored ids.
        self._keys = KeyIndex()
        self._trace_ids: dict[str, None] = {}
        self._count = 0
        self._bytes = 0
        self._version = 0
        # Every append up to this version is in a written part (or memory only).
        self._sealed_version = 0
        self._write_failed_at: float | None = None
        self._snapshot: tuple[int, pl.DataFrame] | None = None
        # The trace table as of a version, and the traces that got spans since.
        self._traces: tuple[int, pl.DataFrame] | None = None
        self._touched: set[str] = set()
        self._summary_lock = threading.Lock()
        self._subscribers: dict[int, Callable[[int], None]] = {}
        self._subscriber_ids = itertools.count()
        self._closed = False
        self._wake = threading.Event()
        self._last_retention = time.monotonic()
        self._last_append = time.monotonic()
        self._parts = PartFolder(self.path) if self.path is not None else None
        self._wal: WriteAheadLog | None = None
        self.quarantined: list[Quarantined] = []
        if self._parts is not None:
            self._load(self._parts)
        self._flusher = threading.Thread(target=self._flush_loop, name="halo-store-flush",
                                         daemon=True)
        self._flusher.start()

    # ---- writing -------------------------------------------------------------------------

    def append(self, frame: pl.DataFrame) -> int:
        """Add spans; spans whose (trace_id, span_id) is already stored are skipped.
        Returns the number of new spans."""
        if frame.height == 0:
            return 0
        return self.append_batches([SpanBatch.of_frame(span_frame(frame))])

    def append_batches(self, batches: list[SpanBatch]) -> int:
        """``append`` for batches (the collector's path): no Polars call unless a key
        says a span may be stored already. Returns the number of new spans. Raises
        ``StoreFull`` past the memory ceiling and, in sync mode, ``StoreWriteFailed``
        when the spans cannot be written; either way nothing new was acknowledged."""
        batches = [b for b in batches if b.rows]
        if not batches:
            return 0
        keys = list(itertools.chain.from_iterable(b.keys for b in batches))
        if len(set(keys)) < len(keys):  # a span repeated within the batches, or a collision
            batches = [SpanBatch.of_frame(frame_of(batches).filter(ID_PAIR.is_first_distinct()))]
            keys = batches[0].keys
        incoming = sum(map(batch_bytes, batches))
        with self._lock:
            if self._closed:
                raise RuntimeError("SpanStore is closed")
            if self.max_bytes is not None and self._bytes + incoming > self.max_bytes:
                raise StoreFull(
                    f"the span store holds {self._bytes / 2**20:,.0f} MiB in memory and "
                    f"{incoming / 2**20:,.1f} MiB more would pass its ceiling of "
                    f"{self.max_bytes / 2**20:,.0f} MiB (max_store_bytes)", retry_after_s=30)
            added = self._add(batches, keys)
            version = self._version
            subscribers = list(self._subscribers.values()) if added else []
            entry = (self._wal.enqueue([b.spans for b in added], version)
                     if self._wal is not None and self.durability == "sync" else None)
        for callback in subscribers:
            try:
                callback(version)
            except Exception:
                log.exception("SpanStore subscriber failed")
        if entry is not None:
            self._commit(entry)
        return sum(b.rows for b in added)

    def _add(self, batches: list[SpanBatch], keys: list[int]) -> list[SpanBatch]:
        """Add the spans not stored yet (call with the lock held); returns them. An entry
        for the log is queued even when nothing is new: its commit then waits for the
        entries before it, which hold the spans that made these duplicates."""
        # Only a span of a trace already stored can be a duplicate: look up those keys.
        candidates = self._rows_of_stored_traces(batches)
        if candidates:
            hits = self._keys.contains([keys[row] for row in candidates])
            if any(hits):
                maybe_stored = [False] * len(keys)
                for row, hit in zip(candidates, hits, strict=True):
                    maybe_stored[row] = hit
                frame = frame_of(batches)
                keep = pl.Series(self._not_stored(frame, maybe_stored), dtype=pl.Boolean)
                batches = [SpanBatch.of_frame(frame.filter(keep))]
                keys = batches[0].keys
        if not keys:
            return []
        self._keys.add(keys)
        for batch in batches:
            self._trace_ids.update(dict.fromkeys(batch.trace_ids))
            self._touched.update(batch.trace_ids)
        self._pending.extend(batches)
        self._bytes += sum(map(batch_bytes, batches))
        self._last_append = time.monotonic()
        self._count += len(keys)
        self._version += 1
        return batches

    def _commit(self, entry: Ticket[WalEntry]) -> None:
        """Return once ``entry`` and every append before it are on disk (sync mode)."""
        assert self._wal is not None
        try:
            self._wal.wait(entry)
        except OSError as exc:
            raise StoreWriteFailed(f"spans could not be written to {self.path}: {exc}; they "
                                   "are kept in memory, retry shortly", retry_after_s=2) from exc
        if self._wal.failed_through <= self._sealed_version:
            return
        # An earlier append's entry failed: its spans (in memory) reach disk as a part first.
        with self._flush_lock:
            if self._wal.failed_through <= self._sealed_version:
                return
            failed_at = self._write_failed_at
            if failed_at is not None and time.monotonic() - failed_at < SYNC_RETRY_S:
                raise StoreWriteFailed("spans cannot be written to disk right now (the last "
                                       "write failed); they are kept in memory, retry shortly",
                                       retry_after_s=2)
            try:
                self._seal_pending()
            except OSError as exc:
                self._write_failed_at = time.monotonic()
                raise StoreWriteFailed(f"spans could not be written to {self.path}: {exc}; "
                                       "they are kept in memory, retry shortly",
                                       retry_after_s=2) from exc
            self._write_failed_at = None

    def _rows_of_stored_traces(self, batches: list[SpanBatch]) -> list[int]:
        """Positions, in the batches' rows taken in order, of the spans whose trace is
        already stored (call with the lock held)."""
        rows: list[int] = []
        offset = 0
        for batch in batches:
            stored = {i for i, t in enumerate(batch.trace_ids) if t in self._trace_ids}
            if stored:
                rows.extend(offset + row for row, trace in enumerate(batch.row_traces)
                            if trace in stored)
            offset += batch.rows
        return rows

    def _not_stored(self, frame: pl.DataFrame, maybe_stored: list[bool]) -> list[bool]:
        """Which rows are really new, given which ones' keys were seen (call with the
        lock held). Keys only shortlist: the ids are compared exactly."""
        candidates = frame.filter(pl.Series(maybe_stored, dtype=pl.Boolean)).select(ID_COLUMNS)
        frames = [s.frame.select(ID_COLUMNS) for s in self._sealed]
        if self._pending:
            frames.append(frame_of(self._pending).select(ID_COLUMNS))
        stored = candidates.join(pl.concat(frames), on=ID_COLUMNS, how="semi")
        duplicate = set(zip(stored["trace_id"], stored["span_id"], strict=True))
        return [not (hit and (t, s) in duplicate) for hit, t, s in
                zip(maybe_stored, frame["trace_id"], frame["span_id"], strict=True)]

    # ---- reading -------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Grows with every append that added spans and every retention pass that dropped
        some."""
        return self._version

    @property
    def memory_bytes(self) -> int:
        """The in-memory spans' size, as the ceiling ``max_bytes`` counts it."""
        return self._bytes

    def __len__(self) -> int:
        return self._count

    def spans(self, trace_id: str | None = None) -> pl.DataFrame:
        """Every stored span, or one trace's, as a new frame with the SPAN_SCHEMA columns."""
        frame = self._all()
        if trace_id is None:
            return expand(frame)
        if trace_id not in self._trace_ids:
            raise UnknownTraceError(f"no stored spans for trace_id {trace_id!r}")
        return expand(frame.filter(pl.col("trace_id") == trace_id).sort("start_ns"))

    def traces(self) -> pl.DataFrame:
        """One row per trace (see ``traces_summary``), newest first. Between calls only
        the traces that received spans are summarised again."""
        with self._summary_lock:
            with self._lock:
                version = self._version
                cached = self._traces
                touched = self._touched
                self._touched = set()
            if cached is not None and cached[0] == version:
                return cached[1].clone()
            spans = self._all()
            if cached is None or len(touched) * 4 > cached[1].height:
                table = summarise_traces(spans)
            else:
                table = update_summary(cached[1], spans, list(touched))
            self._traces = (version, table)
            return table.clone()

    def trace_ids(self) -> list[str]:
        """Trace ids in the order their first span arrived."""
        with self._lock:
            return list(self._trace_ids)

    def subscribe(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call ``callback(version)`` (from the appending thread) after every append that
        added spans. Returns a function that unsubscribes."""
        with self._lock:
            token = next(self._subscriber_ids)
            self._subscribers[token] = callback

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(token, None)

        return unsubscribe

    def _all(self) -> pl.DataFrame:
        with self._lock:
            version = self._version
            if self._snapshot is not None and self._snapshot[0] == version:
                return self._snapshot[1]
            frames = [s.frame for s in self._sealed]
            pending = list(self._pending)
        if pending:
            frames.append(stored_form(pending))
        if not frames:
            frame = conform(empty_spans())
        elif len(frames) == 1:
            frame = frames[0]
        else:
            frame = pl.concat(frames, how="vertical", rechunk=False)
        with self._lock:
            if self._version == version:
                self._snapshot = (version, frame)
        return frame

    # ---- lifecycle -----------------------------------------------------------------------

    def flush(self) -> None:
        """Seal pending spans now (and write them, when persistent)."""
        with self._flush_lock:
            self._seal_pending()
            self._merge_sealed()

    def close(self) -> None:
        """Write everything and stop the background thread. Idempotent. Appends that
        started before ``close`` are written; later ones raise."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake.set()
        self._flusher.join(timeout=30)
        self.flush()
        if self._wal is not None:
            self._wal.close()

    def __enter__(self) -> SpanStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _flush_loop(self) -> None:
        """Flush every FLUSH_INTERVAL_S; after a failure (a full or read-only disk) wait
        twice as long each time, up to RETRY_MAX_S, so a lasting fault neither floods the
        log nor re-seals the growing pending spans four times a second. Nothing is lost
        meanwhile: pending spans stay in memory, queryable, until a write succeeds."""
        failures = 0
        while not self._closed:
            self._wake.wait(min(FLUSH_INTERVAL_S * 2**failures, RETRY_MAX_S))
            if self._closed:
                return
            try:
                self.flush()
                if time.monotonic() - self._last_append >= IDLE_COMPACT_S:
                    self._compact_one()
                if (self.retention_days is not None
                        and time.monotonic() - self._last_retention > RETENTION_INTERVAL_S):
                    self.apply_retention()
            except Exception:
                failures += 1
                log.exception("SpanStore background flush failed (%d in a row); retrying in "
                              "%.1f s", failures,
                              min(FLUSH_INTERVAL_S * 2**failures, RETRY_MAX_S))
            else:
                if failures:
                    log.warning("SpanStore background flush works again after %d failures",
                                failures)
                failures = 0

    def _seal_pending(self) -> None:
        """Move pending batches into a new chunk, written as one hot part (call with the
        flush lock held)."""
        with self._lock:
            count = len(self._pending)
            batch = self._pending[:count]
            version = self._version
        if count:
            frame = stored_form(batch)
            arrived = time.time_ns()
            parts = ([self._parts.write(frame, hot=True, arrived_ns=arrived)]
                     if self._parts is not None else [])
            with self._lock:
                self._sealed.append(Chunk(frame, parts, arrived, arrived))
                del self._pending[:count]
                self._bytes += int(frame.estimated_size()) - sum(map(batch_bytes, batch))
                self._snapshot = None  # it may hold the pending frames just replaced
        self._sealed_version = max(self._sealed_version, version)
        if self._wal is not None:
            self._wal.discard_covered(self._sealed_version)

    def _merge_sealed(self) -> None:
        """Keep the chunk count logarithmic: merge the two newest sealed chunks in memory
        while the newer is at least half the older, the result stays under
        MERGE_LIMIT_ROWS and their spans arrived within a day. On disk a chunk keeps its
        parts until it covers COMPACT_PARTS of them, then it is rewritten as few parts
        and they are deleted."""
        while True:
            with self._lock:
                if len(self._sealed) < 2:
                    break
                older, newer = self._sealed[-2], self._sealed[-1]
            rows = older.frame.height + newer.frame.height
            if (newer.frame.height * 2 < older.frame.height or rows > MERGE_LIMIT_ROWS
                    or not arrived_together(older, newer)):
                break
            chunk = merged(older, newer)
            with self._lock:
                self._sealed[-2:] = [chunk]
                self._snapshot = None
        if self._parts is None:
            return
        with self._lock:
            crowded = [c for c in self._sealed if len(c.parts) >= COMPACT_PARTS]
        for chunk in crowded:
            self._rewrite(chunk)

    def _compact_one(self) -> None:
        """Rewrite the first chunk still held in hot or too many parts as compressed
        parts (the store is idle; one chunk a pass, so a new burst waits for one write)."""
        if self._parts is None:
            return
        with self._flush_lock:
            with self._lock:
                chunk = next((c for c in self._sealed if not c.compact), None)
            if chunk is not None:
                self._rewrite(chunk)

    def _rewrite(self, chunk: Chunk) -> None:
        """Hold ``chunk`` in new compressed parts, read back before the old ones are
        deleted (call with the flush lock held)."""
        assert self._parts is not None
        old_parts = chunk.parts
        chunk.parts = self._parts.write_verified(chunk.frame, chunk.arrived_ns)
        for part in old_parts:
            remove(part)

    # ---- retention -----------------------------------------------------------------------

    def apply_retention(self, now_ns: int | None = None) -> int:
        """Drop live-ingested traces none of whose spans arrived within ``retention_days``
        of ``now_ns`` (memory and disk). Imported snapshots (spans with an origin) are
        kept: an old trace a teammate shared is the point of importing it. Returns the
        number of spans dropped."""
        self._last_retention = time.monotonic()
        if self.retention_days is None:
            return 0
        cutoff = (now_ns or time.time_ns()) - int(self.retention_days * 86_400e9)
        with self._flush_lock:
            self._seal_pending()
            with self._lock:
                sealed = list(self._sealed)
            expired_list = expired_traces(sealed, cutoff)
            if not expired_list:
                return 0
            replaced: list[Chunk] = []
            dropped_keys: list[pl.Series] = []
            for chunk in sealed:
                gone = chunk.frame["trace_id"].is_in(expired_list)
                if not gone.any():
                    replaced.append(chunk)
                    continue
                dropped_keys.append(span_keys(chunk.frame.filter(gone)))
                kept = chunk.frame.filter(~gone)
                parts = (self._parts.write_verified(kept, chunk.arrived_ns)
                         if self._parts is not None and kept.height else [])
                for part in chunk.parts:
                    remove(part)
                if kept.height:
                    replaced.append(Chunk(kept, parts, chunk.arrived_ns, chunk.first_arrived_ns))
            dropped_count = sum(map(len, dropped_keys))
            with self._lock:
                self._sealed = replaced  # only this thread (holding _flush_lock) changes it
                self._bytes = sum(int(c.frame.estimated_size()) for c in replaced) + sum(
                    map(batch_bytes, self._pending))
                if dropped_keys:
                    self._keys.remove(pl.concat(dropped_keys))
                for trace_id in expired_list:
                    self._trace_ids.pop(trace_id, None)
                for pending in self._pending:  # spans of those traces that arrived meanwhile
                    self._trace_ids.update(dict.fromkeys(pending.trace_ids))
                self._count -= dropped_count
                self._version += 1
                self._snapshot = None
                self._traces = None
            return dropped_count

    # ---- disk ----------------------------------------------------------------------------

    def _load(self, folder: PartFolder) -> None:
        loaded = load_parts(folder)
        self.quarantined = loaded.quarantined
        if loaded.chunks:
            self._load_chunks(loaded.chunks)
        tables, segments, last = recover(folder.path)
        self._wal = WriteAheadLog(folder.path, first_sequence=last)
        if tables:
            self._replay(tables)
        self._wal.adopt(segments, self._version)
        if tables:
            try:
                self._seal_pending()
            except OSError as exc:  # the log stays; the background flush retries
                log.warning("halo_nb: spans recovered from the write-ahead log stay in memory "
                            "and in the log until they can be written: %s", exc)
        else:
            self._wal.discard_covered(self._version)
        self.apply_retention()

    def _replay(self, tables: list) -> None:
        """Add the spans of recovered log records (those already in parts are skipped)."""
        batches = []
        for table in tables:
            frame = pl.from_arrow(table)
            assert isinstance(frame, pl.DataFrame)
            if frame.height:
                batches.append(SpanBatch.of_frame(span_frame(frame)))
        if not batches:
            return
        frame = frame_of(batches).filter(ID_PAIR.is_first_distinct())
        batch = SpanBatch.of_frame(frame)
        with self._lock:
            added = self._add([batch], batch.keys)
        log.info("halo_nb: recovered %d spans from the write-ahead log",
                 sum(b.rows for b in added))

    def _load_chunks(self, chunks: list[Chunk]) -> None:
        self._sealed = chunks
        self._keys = KeyIndex()
        trace_ids: dict[str, None] = {}
        for chunk in chunks:
            self._keys.add(span_keys(chunk.frame).to_list())
            trace_ids.update(dict.fromkeys(
                chunk.frame["trace_id"].unique(maintain_order=True).to_list()))
        self._trace_ids = trace_ids
        self._count = sum(c.frame.height for c in chunks)
        self._bytes = sum(int(c.frame.estimated_size()) for c in chunks)
        self._version = 1
        self._sealed_version = 1
