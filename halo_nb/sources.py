"""Spans outside the in-kernel store as one corpus: storage folders (the Parquet parts
collectors wrote), snapshot files, and globs or fsspec URLs of either.

A source expands into pieces (one Parquet part or one snapshot file each) that are read
one at a time, so a corpus larger than memory is never read whole by one process:
halo_nb.distributed reads each piece in a worker task. fsspec is imported only for a URL
(``s3://…``, ``memory://…``): local paths and globs need nothing beyond the default install.
"""

from __future__ import annotations

import glob
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from .schema import SPAN_SCHEMA
from .storage.parts import PART_GLOB

PARQUET, SNAPSHOT = "parquet", "snapshot"
# Snapshot bytes per span, on the low side (OTLP JSON without content), for estimates.
SNAPSHOT_BYTES_PER_SPAN = 500
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class SourcePiece:
    """One readable piece of a corpus: a Parquet part or a snapshot file."""

    path: str  # a local path or an fsspec URL
    kind: str  # PARQUET or SNAPSHOT

    @property
    def is_url(self) -> bool:
        return "://" in self.path

    def size_bytes(self) -> int:
        if self.is_url:
            fs, path = _filesystem(self.path)
            return int(fs.size(path))
        return Path(self.path).stat().st_size

    def span_estimate(self) -> int:
        """How many spans the piece holds: a part's row count from its footer; for a
        snapshot, from its size (SNAPSHOT_BYTES_PER_SPAN: more rather than fewer)."""
        if self.kind == SNAPSHOT:
            return max(1, self.size_bytes() // SNAPSHOT_BYTES_PER_SPAN)
        import pyarrow.parquet as pq

        if not self.is_url:
            return pq.ParquetFile(self.path).metadata.num_rows
        fs, path = _filesystem(self.path)
        with fs.open(path, "rb") as handle:
            return pq.ParquetFile(handle).metadata.num_rows


SourceLike = str | Path | Sequence[str | Path]


def expand_sources(source: SourceLike) -> list[SourcePiece]:
    """The pieces of ``source``, in the order given: a storage folder stands for its parts
    (sorted by name, i.e. by the time they were written), a glob for its matches (sorted);
    a ``.parquet`` file is a part, a ``.json`` file a snapshot. A piece named twice is
    read once. Raises FileNotFoundError for a name that matches nothing."""
    items = [source] if isinstance(source, (str, Path)) else list(source)
    if not items:
        raise ValueError("source: give at least one storage folder, snapshot file or glob")
    pieces: dict[SourcePiece, None] = {}
    for item in items:
        text = str(item)
        found = _expand_url(text) if "://" in text else _expand_local(text)
        if not found:
            raise FileNotFoundError(f"source {text!r}: no storage part or snapshot file there")
        pieces.update(dict.fromkeys(found))
    return list(pieces)


def read_piece(piece: SourcePiece, columns: Sequence[str] | None = None,
               trace_ids: Sequence[str] | None = None) -> pl.DataFrame:
    """One piece as a span frame with ``columns`` (default: every SPAN_SCHEMA column) in
    their SPAN_SCHEMA types, a missing column as nulls; only ``trace_ids`` when given."""
    names = list(columns or SPAN_SCHEMA)
    if piece.kind == PARQUET:
        frame = _read_part(piece, names)
    else:
        frame = _read_snapshot(piece)
    frame = frame.select((pl.col(name) if name in frame.columns else pl.lit(None))
                         .cast(SPAN_SCHEMA[name]).alias(name) for name in names)
    if trace_ids is not None:
        frame = frame.filter(pl.col("trace_id").is_in(pl.Series(list(trace_ids),
                                                                dtype=pl.String).implode()))
    return frame


def read_sources(source: SourceLike, columns: Sequence[str] | None = None,
                 trace_ids: Sequence[str] | None = None) -> pl.DataFrame:
    """Every piece of ``source`` in one frame, in piece order (for the single-process
    analysis of a corpus that fits in memory)."""
    names = list(columns or SPAN_SCHEMA)
    frames = [read_piece(piece, names, trace_ids) for piece in expand_sources(source)]
    return pl.concat(frames, how="vertical", rechunk=True)


def _expand_local(text: str) -> list[SourcePiece]:
    matches = sorted(glob.glob(text)) if _GLOB_CHARS & set(text) else [text]
    pieces: list[SourcePiece] = []
    for match in matches:
        path = Path(match)
        if path.is_dir():
            pieces += [SourcePiece(str(part), PARQUET) for part in sorted(path.glob(PART_GLOB))]
        elif path.is_file():
            pieces.append(SourcePiece(str(path), _kind(str(path))))
    return pieces


def _expand_url(url: str) -> list[SourcePiece]:
    fs, path = _filesystem(url)
    protocol = url.split("://", 1)[0]
    matches = sorted(fs.glob(path)) if _GLOB_CHARS & set(path) else [path]
    pieces: list[SourcePiece] = []
    for match in matches:
        if fs.isdir(match):
            parts = sorted(fs.glob(f"{match.rstrip('/')}/{PART_GLOB}"))
            pieces += [SourcePiece(f"{protocol}://{p}", PARQUET) for p in parts]
        elif fs.exists(match):
            pieces.append(SourcePiece(f"{protocol}://{match}", _kind(match)))
    return pieces


def _kind(path: str) -> str:
    if path.endswith(".parquet"):
        return PARQUET
    if path.endswith(".json"):
        return SNAPSHOT
    raise ValueError(f"source {path!r}: neither a Parquet part (.parquet) nor a snapshot "
                     "(.json)")


def _filesystem(url: str) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(url)


def _read_part(piece: SourcePiece, names: list[str]) -> pl.DataFrame:
    if piece.is_url:
        fs, path = _filesystem(piece.path)
        with fs.open(path, "rb") as handle:
            available = pl.read_parquet_schema(handle)
            handle.seek(0)
            frame = pl.read_parquet(handle, columns=[n for n in names if n in available])
    else:
        scan = pl.scan_parquet(piece.path)
        available = scan.collect_schema()
        frame = scan.select([n for n in names if n in available]).collect()
    return frame


def _read_snapshot(piece: SourcePiece) -> pl.DataFrame:
    from .interchange.snapshot import decode_snapshot, read_snapshot

    if not piece.is_url:
        return decode_snapshot(read_snapshot(piece.path), origin=Path(piece.path).name)
    fs, path = _filesystem(piece.path)
    name = path.rsplit("/", 1)[-1]
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / name
        fs.get_file(path, str(local))
        return decode_snapshot(read_snapshot(local), origin=name)
