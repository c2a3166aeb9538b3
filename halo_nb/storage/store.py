"""SpanStore: the span frame in memory, persisted as append-only Parquet parts.

Appends are short and thread-safe (the collector thread calls them while the
kernel reads). Reads return snapshots: a Polars frame the caller may keep or
mutate without touching the store.

Memory layout: ``_pending`` holds the batches appended since the last flush, as
appended (``SpanBatch``: a SPAN_SCHEMA frame or the native decoder's Arrow table, with
its duplicate keys and trace ids, so that an append makes no Polars call);
``_sealed`` holds larger rechunked frames, each backed by the Parquet parts that hold
its spans. A background thread seals pending frames every ``FLUSH_INTERVAL_S``
(writing them as one new part), merges small sealed frames in memory, and rewrites a
frame spread over many parts as one part, so neither the number of in-memory chunks
nor the number of files grows with every request, and no span is rewritten often.

Parts are written to a temporary file and ``os.replace``-d into place, so a crash
leaves either the old parts or the new one, never half a file; loading drops
duplicate spans, which makes an interrupted compaction harmless.

Hot and cold parts: the part written at each flush is uncompressed, because encoding
Parquet is the largest CPU cost of ingesting at full rate and compression is much of it
(a part cost 3.5 us a span to write with LZ4, 2.0 uncompressed). Once no span has arrived
for ``IDLE_COMPACT_S``, the background thread rewrites every chunk still held in hot
parts as one zstd part (300 bytes a span on disk instead of 1,540), one chunk at a time;
so does any other rewrite (a crowded chunk, retention). A busy collector spends its CPU
on ingest, and the disk is compacted in the pause that follows.

Compact form: low-cardinality text columns (span name, service, model, tool name, OTel
kind, scope, the resource JSON repeated on every span of a process...) are held as
Categorical, 4 bytes a row instead of a 16-byte string view plus the text, and cast back
to String by ``spans()``. The duplicate check keeps 8-byte span keys in sorted NumPy
arrays rather than a Python set (about 70 bytes a span), and looks keys up only when a
batch holds a trace already stored, since only then can a span be a duplicate.

Retention drops whole live-ingested traces whose newest span started more than
``retention_days`` ago, at load and then every ``RETENTION_INTERVAL_S``; imported
snapshots are kept.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ..ingest.span_batch import SpanBatch, frame_of, span_keys
from ..schema import SPAN_SCHEMA, empty_spans
from .traces_summary import summarise_traces, update_summary

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.25
# Longest wait between background flush attempts after failures.
RETRY_MAX_S = 30.0
RETENTION_INTERVAL_S = 60.0
# Sealed chunks merge pairwise while the newer is at least half the older, up to this size.
MERGE_LIMIT_ROWS = 200_000
# A sealed chunk spread over this many Parquet parts is rewritten as one.
COMPACT_PARTS = 16
# After this long without a new span, hot (uncompressed) parts are rewritten compressed.
IDLE_COMPACT_S = 2.0
PART_GLOB = "part-*.parquet"
HOT_SUFFIX = "-hot.parquet"


class UnknownTraceError(KeyError):
    """No stored span has this trace id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown trace"


@dataclass
class _Sealed:
    """A rechunked frame and the Parquet parts on disk that hold exactly its spans."""

    frame: pl.DataFrame
    parts: list[Path] = field(default_factory=list)

    @property
    def compact(self) -> bool:
        """Held on disk as one compressed part."""
        return len(self.parts) == 1 and not self.parts[0].name.endswith(HOT_SUFFIX)


class SpanStore:
    """Spans in memory (Polars) and, when ``path`` is given, on disk (Parquet parts)."""

    def __init__(self, path: Path | str | None, retention_days: float | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.retention_days = retention_days
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._sealed: list[_Sealed] = []
        self._pending: list[SpanBatch] = []
        # The span keys (span_batch.span_keys) already stored: a compact first check for
        # duplicates (exporter retries); a hit is confirmed against the stored ids.
        self._keys = _KeyIndex()
        self._trace_ids: dict[str, None] = {}
        self._count = 0
        self._version = 0
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
        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._load()
        self._flusher = threading.Thread(target=self._flush_loop, name="halo-store-flush",
                                         daemon=True)
        self._flusher.start()

    # ---- writing -------------------------------------------------------------------------

    def append(self, frame: pl.DataFrame) -> int:
        """Add spans; spans whose (trace_id, span_id) is already stored are skipped.
        Returns the number of new spans."""
        if frame.height == 0:
            return 0
        return self.append_batches([SpanBatch.of_frame(_span_frame(frame))])

    def append_batches(self, batches: list[SpanBatch]) -> int:
        """``append`` for batches (the collector's path): no Polars call unless a key
        says a span may be stored already. Returns the number of new spans."""
        batches = [b for b in batches if b.rows]
        if not batches:
            return 0
        if self._closed:
            raise RuntimeError("SpanStore is closed")
        keys = list(itertools.chain.from_iterable(b.keys for b in batches))
        if len(set(keys)) < len(keys):  # a span repeated within the batches, or a collision
            batches = [SpanBatch.of_frame(frame_of(batches).filter(_ID_PAIR.is_first_distinct()))]
            keys = batches[0].keys
        with self._lock:
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
            added = len(keys)
            if added == 0:
                return 0
            self._keys.add(keys)
            for batch in batches:
                self._trace_ids.update(dict.fromkeys(batch.trace_ids))
                self._touched.update(batch.trace_ids)
            self._pending.extend(batches)
            self._last_append = time.monotonic()
            self._count += added
            self._version += 1
            version = self._version
            subscribers = list(self._subscribers.values())
        for callback in subscribers:
            try:
                callback(version)
            except Exception:
                log.exception("SpanStore subscriber failed")
        return added

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
        candidates = frame.filter(pl.Series(maybe_stored, dtype=pl.Boolean)).select(_ID_COLUMNS)
        frames = [s.frame.select(_ID_COLUMNS) for s in self._sealed]
        if self._pending:
            frames.append(frame_of(self._pending).select(_ID_COLUMNS))
        stored = candidates.join(pl.concat(frames), on=_ID_COLUMNS, how="semi")
        duplicate = set(zip(stored["trace_id"], stored["span_id"], strict=True))
        return [not (hit and (t, s) in duplicate) for hit, t, s in
                zip(maybe_stored, frame["trace_id"], frame["span_id"], strict=True)]

    # ---- reading -------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Grows with every append that added spans and every retention pass that dropped
        some."""
        return self._version

    def __len__(self) -> int:
        return self._count

    def spans(self, trace_id: str | None = None) -> pl.DataFrame:
        """Every stored span, or one trace's, as a new frame with the SPAN_SCHEMA columns."""
        frame = self._all()
        if trace_id is None:
            return _expand(frame)
        if trace_id not in self._trace_ids:
            raise UnknownTraceError(f"no stored spans for trace_id {trace_id!r}")
        return _expand(frame.filter(pl.col("trace_id") == trace_id).sort("start_ns"))

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
            frames.append(_stored_form(pending))
        if not frames:
            frame = _conform(empty_spans())
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
        """Flush and stop the background thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._flusher.join(timeout=30)
        self.flush()

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
        with self._lock:
            count = len(self._pending)
            batch = self._pending[:count]
        if not count:
            return
        frame = _stored_form(batch)
        parts = [self._write_part(frame, hot=True)] if self.path is not None else []
        with self._lock:
            self._sealed.append(_Sealed(frame, parts))
            del self._pending[:count]
            self._snapshot = None  # it may hold the pending frames just replaced

    def _merge_sealed(self) -> None:
        """Keep the chunk count logarithmic: merge the two newest sealed chunks in memory
        while the newer is at least half the older and the result stays under
        MERGE_LIMIT_ROWS. On disk a chunk keeps its parts until it covers COMPACT_PARTS of
        them, then it is written as one part and they are deleted."""
        while True:
            with self._lock:
                if len(self._sealed) < 2:
                    break
                older, newer = self._sealed[-2], self._sealed[-1]
            rows = older.frame.height + newer.frame.height
            if newer.frame.height * 2 < older.frame.height or rows > MERGE_LIMIT_ROWS:
                break
            frame = pl.concat([older.frame, newer.frame], how="vertical", rechunk=True)
            with self._lock:
                self._sealed[-2:] = [_Sealed(frame, older.parts + newer.parts)]
                self._snapshot = None
        if self.path is None:
            return
        with self._lock:
            crowded = [c for c in self._sealed if len(c.parts) >= COMPACT_PARTS]
        for chunk in crowded:
            self._rewrite(chunk)

    def _compact_one(self) -> None:
        """Rewrite the first chunk still held in hot or several parts as one compressed
        part (the store is idle; one chunk a pass, so a new burst waits for one write)."""
        if self.path is None:
            return
        with self._flush_lock:
            with self._lock:
                chunk = next((c for c in self._sealed if not c.compact), None)
            if chunk is not None:
                self._rewrite(chunk)

    def _rewrite(self, chunk: _Sealed) -> None:
        """Hold ``chunk`` in one new compressed part (call with the flush lock held)."""
        old_parts = chunk.parts
        chunk.parts = [self._write_part(chunk.frame)]
        for part in old_parts:
            _unlink(part)

    # ---- retention -----------------------------------------------------------------------

    def apply_retention(self, now_ns: int | None = None) -> int:
        """Drop traces whose newest span started more than ``retention_days`` ago (memory and
        disk). Imported snapshots (spans with an origin) are kept: an old trace a teammate
        shared is the point of importing it. Returns the number of spans dropped."""
        self._last_retention = time.monotonic()
        if self.retention_days is None:
            return 0
        cutoff = (now_ns or time.time_ns()) - int(self.retention_days * 86_400e9)
        with self._flush_lock:
            self._seal_pending()
            frame = self._all()
            expired = (frame.group_by("trace_id")
                       .agg(pl.col("start_ns").max(),
                            live=pl.col("origin").is_null().all())
                       .filter(pl.col("live") & (pl.col("start_ns") < cutoff))["trace_id"])
            if expired.len() == 0:
                return 0
            expired_list = expired.to_list()
            with self._lock:
                sealed = list(self._sealed)
            replaced: list[_Sealed] = []
            dropped_keys: list[pl.Series] = []
            for chunk in sealed:
                gone = chunk.frame["trace_id"].is_in(expired_list)
                if not gone.any():
                    replaced.append(chunk)
                    continue
                dropped = chunk.frame.filter(gone)
                dropped_keys.append(span_keys(dropped))
                kept = chunk.frame.filter(~gone)
                parts = [self._write_part(kept)] if self.path is not None and kept.height else []
                for part in chunk.parts:
                    _unlink(part)
                if kept.height:
                    replaced.append(_Sealed(kept, parts))
            dropped_count = sum(map(len, dropped_keys))
            with self._lock:
                self._sealed = replaced  # only this thread (holding _flush_lock) changes it
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

    def _write_part(self, frame: pl.DataFrame, hot: bool = False) -> Path:
        """Write ``frame`` as a new part: uncompressed when ``hot`` (see the module
        docstring), else zstd level 1, which holds this data in 57% of LZ4's bytes."""
        assert self.path is not None
        suffix = HOT_SUFFIX if hot else ".parquet"
        name = f"part-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}"
        final = self.path / name
        temp = self.path / f".{name}.tmp"
        if hot:
            frame.write_parquet(temp, compression="uncompressed", statistics=False)
        else:
            frame.write_parquet(temp, compression="zstd", compression_level=1,
                                statistics=False)
        with temp.open("rb") as fh:
            os.fsync(fh.fileno())
            _drop_cached_pages(fh.fileno())
        os.replace(temp, final)
        return final

    def _load(self) -> None:
        assert self.path is not None
        for stale in self.path.glob(".part-*.tmp"):
            _unlink(stale)
        parts: list[Path] = []
        frames = []
        for part in sorted(self.path.glob(PART_GLOB)):
            try:
                frames.append(_conform(pl.read_parquet(part)))
            except Exception as exc:  # a foreign or damaged file must not block startup
                log.warning("halo_nb: skipping unreadable part %s: %s", part, exc)
                continue
            parts.append(part)
        if not frames:
            return
        frame = pl.concat(frames, how="vertical", rechunk=True)
        frame = frame.unique(subset=["trace_id", "span_id"], keep="first", maintain_order=True)
        self._keys = _KeyIndex()
        self._keys.add(span_keys(frame).to_list())
        self._trace_ids = dict.fromkeys(frame["trace_id"].unique(maintain_order=True).to_list())
        self._count = frame.height
        self._sealed = [_Sealed(frame, parts)]
        self._version = 1
        self.apply_retention()


_ID_COLUMNS = ["trace_id", "span_id"]
_ID_PAIR = pl.struct(_ID_COLUMNS)


# Held as Categorical inside the store (see the module docstring); String outside.
_CATEGORICAL_COLUMNS = ("name", "service", "model", "tool_name", "finish_reason", "otel_kind",
                        "trace_state", "scope_name", "scope_version", "resource", "origin")
_STORED_SCHEMA: dict[str, pl.DataType] = {
    name: pl.Categorical() if name in _CATEGORICAL_COLUMNS else dtype
    for name, dtype in SPAN_SCHEMA.items()
}
_STORED_ITEMS = list(_STORED_SCHEMA.items())
_SPAN_ITEMS = list(SPAN_SCHEMA.items())


def _span_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with exactly the SPAN_SCHEMA columns, in order (missing ones null)."""
    if list(frame.schema.items()) == _SPAN_ITEMS:
        return frame
    return _select_schema(frame, SPAN_SCHEMA)


def _stored_form(batches: list[SpanBatch]) -> pl.DataFrame:
    """Appended batches as one stored chunk: imported, copied into one chunk and cast
    here, once for everything appended since the last flush (each of those costs about
    half a millisecond a call whatever the size)."""
    return _conform(frame_of(batches).rechunk())


def _conform(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame in the store's form: exactly the SPAN_SCHEMA columns, in order (missing
    ones null), low-cardinality text as Categorical."""
    items = list(frame.schema.items())
    if items == _STORED_ITEMS:
        return frame
    if items == _SPAN_ITEMS:  # what every decoder builds: one cast, no per-column plan
        return frame.with_columns(pl.col(_CATEGORICAL_COLUMNS).cast(pl.Categorical()))
    return _select_schema(frame, _STORED_SCHEMA)


def _select_schema(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Exactly ``schema``'s columns, in its order and types (missing ones null)."""
    return frame.select(
        (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in schema.items()
    )


def _expand(frame: pl.DataFrame) -> pl.DataFrame:
    """A stored frame as SPAN_SCHEMA says (a new frame: safe to keep or mutate)."""
    return frame.with_columns(pl.col(_CATEGORICAL_COLUMNS).cast(pl.String))


class _KeyIndex:
    """A set of 64-bit span keys in little memory: the newest keys in a Python set, older
    ones in sorted uint64 NumPy arrays (8 bytes a key) that merge while the newer is at
    least half the older, so a lookup is one set probe and a binary search in O(log n)
    arrays. NumPy's searchsorted, not Polars': a few hundred keys into a million take a
    fifth of the time (70 against 330 us). Call with the store's lock held."""

    RECENT_LIMIT = 65_536

    def __init__(self) -> None:
        self._recent: set[int] = set()
        self._runs: list[np.ndarray] = []

    def contains(self, keys: list[int]) -> list[bool]:
        recent = self._recent
        found = [key in recent for key in keys]
        if self._runs:
            probe = np.fromiter(keys, dtype=np.uint64, count=len(keys))
            stored = np.zeros(len(keys), dtype=bool)
            for run in self._runs:
                at = np.minimum(np.searchsorted(run, probe), len(run) - 1)
                stored |= run[at] == probe
            found = [f or s for f, s in zip(found, stored.tolist(), strict=True)]
        return found

    def add(self, keys: list[int]) -> None:
        self._recent.update(keys)
        if len(self._recent) < self.RECENT_LIMIT:
            return
        self._runs.append(np.sort(np.fromiter(self._recent, dtype=np.uint64,
                                              count=len(self._recent))))
        self._recent = set()
        while len(self._runs) > 1 and len(self._runs[-1]) * 2 >= len(self._runs[-2]):
            newer = self._runs.pop()
            self._runs[-1] = np.sort(np.concatenate([self._runs[-1], newer]))

    def remove(self, keys: pl.Series) -> None:
        self._recent.difference_update(keys.to_list())
        if not self._runs:
            return
        every = np.concatenate(self._runs)
        kept = np.sort(every[~np.isin(every, keys.to_numpy())])
        self._runs = [kept] if len(kept) else []


def _drop_cached_pages(fd: int) -> None:
    """Let the kernel reuse a written part's page cache at once: a part is read again only
    at the next start, and a page cache that keeps every part written grows into fresh
    memory, which on the benchmark VM costs up to 8 times the CPU of writing into pages
    just freed (writing 200 MB: 1.8-4.1 ms a MB kept, 0.43 ms a MB dropped)."""
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _unlink(path: Path | None) -> None:
    if path is None:
        return
    try:
        path.unlink()
    except FileNotFoundError:
        pass
