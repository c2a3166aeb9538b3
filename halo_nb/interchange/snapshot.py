"""Portable snapshots: traces written to one JSON file and read back into a store.

A snapshot is a small envelope around an OTLP JSON ``ExportTraceServiceRequest``::

    {"format": "halo_nb.snapshot", "version": 1, "created_at": "...Z",
     "halo_nb_version": "0.1.0", "trace_ids": [...], "span_count": 12,
     "checksum": "jcs-sha256:<hex of the canonical payload>", "origins": [...],
     "payload": {"resourceSpans": [...]},
     "findings": [...], "findings_checksum": "jcs-sha256:..."}  # optional

The payload is exactly what an OTLP/HTTP JSON endpoint accepts, so it can be posted
anywhere unchanged. Import goes through the collector's JSON decoder (one
normalisation path) and is all or nothing: every check runs before a single span
reaches the store. The checksum covers the payload in RFC 8785 canonical form
(``canonical_json``), which no JSON library's version changes, so a snapshot verifies on
a teammate's machine whatever is installed there, and after any tool re-serialises it.
Files written before that carry a ``sha256:`` checksum over the payload as orjson wrote
it with sorted keys; they are verified that way.

Files are handled as a hostile user might hand them over: export writes only to a
regular file (or a new one), never through a device, FIFO or directory; import reads only
a regular file no larger than ``max_snapshot_bytes`` (checked before reading, so a FIFO
cannot hang it and ``/dev/zero`` cannot exhaust memory); and a snapshot holding spans the
store already has under the same ids but with other content is a conflict that imports
nothing, rather than being silently skipped as a repeat.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import polars as pl

from ..ingest.otlp import OTLPDecodeError, decode_json
from ..schema import SPAN_COLUMNS
from ..storage.store import UnknownTraceError
from ..storage.traces_summary import summarise_traces
from .canonical_json import write_canonical
from .otlp_encode import encode_request

if TYPE_CHECKING:
    from ..storage.store import SpanStore

FORMAT = "halo_nb.snapshot"
VERSION = 1
REQUIRED_FIELDS = ("trace_ids", "span_count", "checksum", "payload")


class SnapshotError(ValueError):
    """A snapshot cannot be written or read; subclasses say why."""


class SnapshotCorruptError(SnapshotError):
    """The file is not valid JSON, or its content contradicts itself."""


class SnapshotTruncatedError(SnapshotError):
    """The file ends before its JSON document does (an interrupted copy or download)."""


class SnapshotFormatError(SnapshotError):
    """The file is JSON but not a halo_nb snapshot."""


class SnapshotVersionError(SnapshotError):
    """The snapshot was written in a format version this halo_nb does not read."""


class SnapshotChecksumError(SnapshotError):
    """The payload does not match the checksum written with it (the file was altered)."""


class SnapshotFileError(SnapshotError):
    """The path is not a regular file (a directory, FIFO or device), or is larger than
    ``max_snapshot_bytes``."""


class SnapshotConflictError(SnapshotError):
    """The snapshot holds spans the store already has, under the same ids, with other
    content; nothing was imported."""


@dataclass(frozen=True)
class Snapshot:
    """A snapshot file read and verified, not yet decoded."""

    path: Path
    envelope: dict[str, Any]
    payload: dict[str, Any]
    findings: list[dict[str, Any]] | None

    @property
    def trace_ids(self) -> list[str]:
        return list(self.envelope["trace_ids"])

    @property
    def span_count(self) -> int:
        return int(self.envelope["span_count"])


@dataclass(frozen=True)
class ImportResult:
    """What ``import_snapshot`` did: the traces in the file, spans new to the store and
    spans it already held (a repeated import adds none)."""

    path: Path
    origin: str
    trace_ids: list[str]
    spans_added: int
    spans_already_present: int
    created_at: str | None
    halo_nb_version: str | None
    findings: pl.DataFrame | None

    @property
    def span_count(self) -> int:
        return self.spans_added + self.spans_already_present


# ---- export ------------------------------------------------------------------------------


def export_snapshot(store: SpanStore, traces: Any, path: Path | str, *,
                    with_findings: bool = False) -> Path:
    """Write the selected traces to ``path`` as one snapshot file; returns the path.

    ``traces`` is a trace id, a list of ids, a frame with a ``trace_id`` column (such as
    a filtered ``trace_table()``), a Polars expression, or None for every trace. An
    expression filters the trace table (``store.traces()``) when every
    column it names is a trace-table column, else the span frame; either way whole
    traces are exported, never parts of one. The file is written atomically.
    """
    path = Path(path)
    _check_export_target(path)
    spans = store.spans()
    trace_ids = _select_traces(spans, traces)
    order = {trace_id: n for n, trace_id in enumerate(trace_ids)}
    selected = (
        spans.filter(pl.col("trace_id").is_in(trace_ids))
        .with_columns(pl.col("trace_id").replace_strict(order, return_dtype=pl.Int64)
                      .alias("_order"))
        .sort("_order", "start_ns", "span_id")
        .drop("_order")
    )
    payload = encode_request(selected)
    envelope: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "halo_nb_version": _halo_version(),
        "trace_ids": trace_ids,
        "span_count": selected.height,
        "checksum": checksum(payload),
        "origins": sorted(selected.get_column("origin").drop_nulls().unique().to_list()),
        "payload": payload,
    }
    if with_findings:
        findings = _findings_for(selected)
        envelope["findings"] = findings
        envelope["findings_checksum"] = checksum(findings)
    _write_atomically(path, envelope)
    return path


def _select_traces(spans: pl.DataFrame, traces: Any) -> list[str]:
    if traces is None:
        ids = spans.get_column("trace_id").unique(maintain_order=True).to_list()
        if not ids:
            raise SnapshotError("the store holds no traces; nothing to export")
        return ids
    if isinstance(traces, pl.Expr):
        return _traces_matching(spans, traces)
    if isinstance(traces, pl.DataFrame):
        if "trace_id" not in traces.columns:
            raise TypeError("traces: a frame passed as the selection needs a trace_id column")
        traces = traces.get_column("trace_id").to_list()
    if isinstance(traces, str):
        traces = [traces]
    if not isinstance(traces, Iterable) or isinstance(traces, (bytes, Mapping)):
        raise TypeError("traces: expected a trace id, a list of trace ids, a Polars expression "
                        f"or None, got {type(traces).__name__}")
    ids = list(dict.fromkeys(traces))
    if not ids:
        raise SnapshotError("no trace ids given; nothing to export")
    bad = [t for t in ids if not isinstance(t, str)]
    if bad:
        raise TypeError(f"traces: trace ids must be strings, got {bad[0]!r}")
    known = set(spans.get_column("trace_id").unique().to_list())
    unknown = [t for t in ids if t not in known]
    if unknown:
        raise UnknownTraceError(f"unknown trace id{'s' if len(unknown) > 1 else ''}: "
                                + ", ".join(unknown))
    return ids


def _traces_matching(spans: pl.DataFrame, expr: pl.Expr) -> list[str]:
    columns = set(expr.meta.root_names())
    table = summarise_traces(spans)  # from the same snapshot of the store as the spans
    if columns <= set(table.columns):
        frame, what = table, "trace table"
    elif columns <= set(spans.columns):
        frame, what = spans, "span frame"
    else:
        unknown = sorted(columns - set(table.columns) - set(spans.columns))
        raise SnapshotError(f"the filter names unknown column(s): {', '.join(unknown)}")
    try:
        matched = frame.filter(expr)
    except pl.exceptions.PolarsError as exc:
        raise SnapshotError(f"the filter cannot be applied to the {what}: {exc}") from None
    ids = matched.get_column("trace_id").unique(maintain_order=True).to_list()
    if not ids:
        raise SnapshotError(f"the filter matched no traces (applied to the {what})")
    return ids


def _findings_for(spans: pl.DataFrame) -> list[dict[str, Any]]:
    from .. import runtime
    from ..rlm import analyze_frame

    # Findings come from the detectors alone; the model only phrases hypotheses, which a
    # snapshot does not carry, so it is not loaded.
    result = analyze_frame(spans, runtime.settings().replace(model="none"))
    return orjson.loads(result.findings.write_json())


def _check_export_target(path: Path) -> None:
    """Refuse to replace anything but a regular file: renaming the new file over a device
    node such as /dev/full, a FIFO or a directory would destroy it, not write to it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return  # a new file (or a dangling link, which the new file replaces)
    if not stat.S_ISREG(mode):
        raise SnapshotFileError(f"{path}: is {_file_kind(mode)}, not a regular file; a "
                                "snapshot is written only to a regular file")


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _write_atomically(path: Path, envelope: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_envelope_text(envelope))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _envelope_text(envelope: Mapping[str, Any]) -> str:
    """One envelope field per line, so the header reads at a glance in any editor,
    each value compact so the payload stays small."""
    fields = (f" {json.dumps(key)}: {_compact(value).decode('utf-8')}"
              for key, value in envelope.items())
    return "{\n" + ",\n".join(fields) + "\n}\n"


CHECKSUM = "jcs-sha256:"
LEGACY_CHECKSUM = "sha256:"


def checksum(value: Any) -> str:
    """``jcs-sha256:<hex>``: SHA-256 of a JSON value in RFC 8785 canonical form."""
    digest = hashlib.sha256()
    write_canonical(value, digest.update)
    return CHECKSUM + digest.hexdigest()


def _verifies(value: Any, expected: Any) -> bool:
    """Whether ``value`` hashes to ``expected``, in the algorithm ``expected`` names."""
    if isinstance(expected, str) and expected.startswith(LEGACY_CHECKSUM):
        return expected == LEGACY_CHECKSUM + hashlib.sha256(
            _compact(value, sort_keys=True)).hexdigest()
    return expected == checksum(value)


def _compact(value: Any, sort_keys: bool = False) -> bytes:
    """Compact UTF-8 JSON (orjson; the standard encoder for what orjson refuses, such as
    integers beyond 64 bits)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except TypeError:
        return json.dumps(value, sort_keys=sort_keys, separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")


def _halo_version() -> str:
    from .. import __version__

    return __version__


# ---- import ------------------------------------------------------------------------------


def read_snapshot(path: Path | str, max_bytes: int | None = None) -> Snapshot:
    """Read and verify a snapshot file (format, version, fields, checksums) without
    decoding its spans. Raises a ``SnapshotError`` subclass naming the problem.
    ``max_bytes`` defaults to the ``max_snapshot_bytes`` setting."""
    path = Path(path)
    raw = _read_regular_file(path, max_bytes)
    if not raw.strip():
        raise SnapshotTruncatedError(f"{path}: the file is empty")
    try:
        envelope = orjson.loads(raw)
    except orjson.JSONDecodeError:
        envelope = _parse_slowly(path, raw)
    if not isinstance(envelope, dict) or "format" not in envelope:
        hint = (" (it looks like a bare OTLP JSON request: post it to a collector's /v1/traces)"
                if isinstance(envelope, dict) and "resourceSpans" in envelope else "")
        raise SnapshotFormatError(f"{path}: not a halo_nb snapshot: no 'format' field{hint}")
    if envelope["format"] != FORMAT:
        raise SnapshotFormatError(
            f"{path}: not a halo_nb snapshot: format is {envelope['format']!r}, "
            f"expected {FORMAT!r}")
    version = envelope.get("version")
    if version != VERSION or isinstance(version, bool):
        newer = isinstance(version, int) and not isinstance(version, bool) and version > VERSION
        raise SnapshotVersionError(
            f"{path}: snapshot format version {version!r} is not supported; this halo_nb "
            f"reads version {VERSION}" + (" (upgrade halo_nb to read it)" if newer else ""))
    missing = [name for name in REQUIRED_FIELDS if name not in envelope]
    if missing:
        raise SnapshotCorruptError(f"{path}: missing field(s): {', '.join(missing)}")
    _check_envelope_types(path, envelope)
    try:
        payload_verifies = _verifies(envelope["payload"], envelope["checksum"])
    except RecursionError:  # the payload nests past what canonical JSON walks
        raise SnapshotCorruptError(f"{path}: the payload is nested too deeply to be spans"
                                   ) from None
    if not payload_verifies:
        raise SnapshotChecksumError(
            f"{path}: checksum mismatch: the file says {envelope['checksum']}, its payload "
            f"hashes to {checksum(envelope['payload'])}; the spans were altered after export")
    findings = envelope.get("findings")
    if findings is not None:
        if not isinstance(findings, list):
            raise SnapshotCorruptError(f"{path}: 'findings' must be a list")
        if not _verifies(findings, envelope.get("findings_checksum")):
            raise SnapshotChecksumError(
                f"{path}: findings checksum mismatch; the findings were altered after export")
    return Snapshot(path, envelope, envelope["payload"], findings)


def _read_regular_file(path: Path, max_bytes: int | None) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``; the check
    comes before any read (opened non-blocking, so a FIFO cannot hang it)."""
    if max_bytes is None:
        from .. import runtime

        max_bytes = runtime.settings().max_snapshot_bytes
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SnapshotFileError(f"{path}: is {_file_kind(info.st_mode)}, not a regular "
                                    "file; a snapshot is read only from a regular file")
        if info.st_size > max_bytes:
            raise _too_large(path, str(info.st_size), max_bytes)
        with open(fd, "rb", closefd=False) as fh:
            raw = fh.read(max_bytes + 1)  # a file still growing stops at the limit too
    finally:
        os.close(fd)
    if len(raw) > max_bytes:
        raise _too_large(path, f"more than {max_bytes}", max_bytes)
    return raw


def _too_large(path: Path, size: str, max_bytes: int) -> SnapshotFileError:
    return SnapshotFileError(f"{path}: {size} bytes is larger than the limit of {max_bytes} "
                             "bytes (max_snapshot_bytes); raise the setting to import it")


def _parse_slowly(path: Path, raw: bytes) -> Any:
    """Parse with the standard library, whose errors tell a file that stops early from
    one that is damaged (and which reads integers beyond 64 bits)."""
    cut_off = (f"{path}: the file ends before its JSON document does; it was probably cut "
               "off while being written or copied")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":
            raise SnapshotTruncatedError(cut_off) from None
        raise SnapshotCorruptError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
                                   ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if _ends_early(text, exc):
            raise SnapshotTruncatedError(cut_off) from None
        raise SnapshotCorruptError(f"{path}: not valid JSON: {exc}") from None
    except RecursionError:
        raise SnapshotCorruptError(f"{path}: the JSON is nested too deeply to be a snapshot"
                                   ) from None


def _ends_early(text: str, exc: json.JSONDecodeError) -> bool:
    """Whether the JSON error is the document running out, not a wrong character: the
    parser stopped at the end, inside a string, or inside a number or literal."""
    if exc.msg.startswith("Unterminated string"):
        return True
    tail = text[exc.pos:].rstrip()
    return (not tail or any(word.startswith(tail) for word in ("true", "false", "null"))
            or re.fullmatch(r"-?[0-9.eE+-]*", tail) is not None)


def _check_envelope_types(path: Path, envelope: Mapping[str, Any]) -> None:
    expected = {"trace_ids": list, "span_count": int, "checksum": str, "payload": dict}
    for name, kind in expected.items():
        value = envelope[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise SnapshotCorruptError(f"{path}: field {name!r} must be a {kind.__name__}, "
                                       f"got {type(value).__name__}")


def decode_snapshot(snapshot: Snapshot, origin: str | None = None) -> pl.DataFrame:
    """The snapshot's spans as a span frame, through the collector's JSON decoder.
    Any span the decoder rejects, or a count that disagrees with the envelope, fails
    the whole snapshot."""
    path = snapshot.path
    try:
        result = decode_json(snapshot.payload, origin=origin)
    except OTLPDecodeError as exc:
        raise SnapshotCorruptError(f"{path}: the payload is not an OTLP request: {exc}") from None
    if result.rejected:
        raise SnapshotCorruptError(f"{path}: {result.rejected} span(s) in the payload are "
                                   f"invalid: {result.error_message()}")
    frame = result.frame
    if frame.height != snapshot.span_count:
        raise SnapshotCorruptError(f"{path}: the envelope says {snapshot.span_count} spans, "
                                   f"the payload holds {frame.height}")
    decoded_ids = set(frame.get_column("trace_id").unique().to_list())
    if decoded_ids != set(snapshot.trace_ids):
        raise SnapshotCorruptError(f"{path}: the envelope's trace_ids do not match the "
                                   "traces in the payload")
    return frame


def import_snapshot(store: SpanStore, path: Path | str) -> ImportResult:
    """Load a snapshot into ``store``: all or nothing, idempotent by (trace id, span id).
    Imported spans get ``origin`` = the file name."""
    snapshot = read_snapshot(path)
    origin = snapshot.path.name
    frame = decode_snapshot(snapshot, origin=origin)
    _refuse_conflicts(store, frame, snapshot.path)
    added = store.append(frame)
    envelope = snapshot.envelope
    findings = snapshot.findings
    return ImportResult(
        path=snapshot.path,
        origin=origin,
        trace_ids=snapshot.trace_ids,
        spans_added=added,
        spans_already_present=frame.height - added,
        created_at=envelope.get("created_at"),
        halo_nb_version=envelope.get("halo_nb_version"),
        findings=pl.DataFrame(findings, infer_schema_length=None) if findings else None,
    )


# Compared when a snapshot's span is already stored: everything but where it came from.
_CONTENT_COLUMNS = [c for c in SPAN_COLUMNS if c not in ("trace_id", "span_id", "origin")]
# Up to this many stored traces are fetched one by one; more, as one filter of the store.
_TRACES_FETCHED_SINGLY = 64


def _refuse_conflicts(store: SpanStore, frame: pl.DataFrame, path: Path) -> None:
    """Raise ``SnapshotConflictError`` when a span of ``frame`` is stored under the same
    (trace id, span id) with other content: importing would keep one of the two
    silently."""
    known = sorted(set(store.trace_ids()).intersection(frame.get_column("trace_id").to_list()))
    if not known:
        return
    if len(known) <= _TRACES_FETCHED_SINGLY:
        stored = pl.concat([store.spans(trace_id) for trace_id in known])
    else:
        stored = store.spans().filter(pl.col("trace_id").is_in(known))
    both = frame.join(stored, on=["trace_id", "span_id"], how="inner", suffix="_stored")
    differs = {column: ~both.get_column(column).eq_missing(both.get_column(f"{column}_stored"))
               for column in _CONTENT_COLUMNS}
    changed = pl.Series([False] * both.height, dtype=pl.Boolean)
    for mask in differs.values():
        changed = changed | mask
    if not changed.any():
        return
    traces = both.filter(changed).get_column("trace_id").unique(maintain_order=True).to_list()
    columns = [column for column, mask in differs.items() if mask.any()]
    shown = ", ".join(traces[:5]) + (f" and {len(traces) - 5} more" if len(traces) > 5 else "")
    raise SnapshotConflictError(
        f"{path}: {int(changed.sum())} span(s) of trace(s) {shown} are already stored with "
        f"different content ({', '.join(columns)}); nothing was imported")
