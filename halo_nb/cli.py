"""The ``halo`` command line: parses arguments, calls the command layer (``commands.py``,
shared with the ``%halo`` magic) and prints.

Exit codes: 0 success, 1 usage error (bad arguments or settings), 2 data error (a
file, trace id, snapshot or endpoint that cannot be used). Errors are one line on
stderr; ``HALO_DEBUG=1`` adds the traceback.

Each subcommand is one ``_add_*`` function registering its parser and its
``run`` function, so new subcommands slot in beside them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import halo_nb

from . import commands
from .commands import CommandError
from .config import ConfigError, Settings, load_settings, settings_toml

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_DATA = 2


Commands = Any  # argparse's subparsers action (a private class)


class UsageError(Exception):
    """Bad command-line arguments (exit code 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``halo`` with ``argv`` (default: the process arguments); returns the exit code."""
    code = _run(argv)
    try:
        _close_store()
    except Exception as exc:
        return _fail(RuntimeError(f"could not flush the store: {exc}"), EXIT_DATA)
    return code


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError("a command is required (see 'halo --help')")
        if getattr(args, "storage", None) is not None:
            halo_nb.configure(storage_path=args.storage)
        return args.run(args) or EXIT_OK
    except (UsageError, ConfigError) as exc:
        return _fail(exc, EXIT_USAGE)
    except KeyboardInterrupt:
        print("halo: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # Data errors say what is wrong with the input; anything else is a halo_nb bug,
        # still reported in one line (exit code 2) with a hint for the traceback.
        return _fail(exc, EXIT_DATA, internal=not _is_data_error(exc))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="halo", description="halo_nb: a local debugger for AI-agent traces.",
                     epilog="Exit codes: 0 success, 1 usage error, 2 data error. Settings come "
                            "from halo.toml, then HALO_* variables, then options. HALO_DEBUG=1 "
                            "shows tracebacks.")
    parser.add_argument("--version", action="version",
                        version=f"halo {halo_nb.__version__} (halo_nb)")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    storage = _Parser(add_help=False)
    storage.add_argument("--storage", type=_storage_folder, metavar="DIR",
                         help="storage folder (default: halo.toml, HALO_STORAGE_PATH, "
                              "or .halo/data)")
    for add in (_add_init, _add_serve, _add_list_traces, _add_show, _add_analyze, _add_explain,
                _add_export, _add_import, _add_replay, _add_compare, _add_check):
        add(subcommands, storage)
    return parser


def _storage_folder(text: str) -> Path:
    """``--storage``'s value: a folder; an empty one is refused, not taken as ".". """
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty (\".\" means this folder)")
    return Path(text)


# ---- init ----------------------------------------------------------------------------------

def _add_init(subcommands: Commands, storage: argparse.ArgumentParser) -> None:
    p = subcommands.add_parser("init", help="write a commented halo.toml and the storage folder",
                            description="Write a commented halo.toml and create the storage "
                                        "folder.")
    p.add_argument("--dir", type=Path, default=Path("."), help="folder for halo.toml (default: .)")
    p.add_argument("--storage", dest="init_storage", type=Path, default=Settings.storage_path,
                   metavar="DIR",
                   help=f"storage folder, relative to --dir (default: {Settings.storage_path})")
    p.add_argument("--port", type=int, default=Settings.port, help="collector port")
    p.add_argument("--force", action="store_true", help="overwrite an existing halo.toml")
    p.set_defaults(run=_init)


def _init(args: argparse.Namespace) -> int:
    folder: Path = args.dir
    target = folder / "halo.toml"
    if target.exists() and not args.force:
        raise UsageError(f"{target} already exists; use --force to overwrite it")
    text = settings_toml(Settings(port=args.port, storage_path=args.init_storage))
    folder.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".halo.toml.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        settings = _settings_from(Path(temp), folder)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    settings.storage_path.mkdir(parents=True, exist_ok=True)
    print(f"wrote {target}")
    print(f"storage folder {settings.storage_path.resolve()}")
    print("next: 'halo serve' (or halo_nb.serve() in a notebook) in this folder")
    return EXIT_OK


def _settings_from(toml_file: Path, folder: Path) -> Settings:
    """Check the written file parses into valid settings (before it replaces anything)."""
    import tomllib

    with toml_file.open("rb") as fh:
        values = tomllib.load(fh)
    storage = Path(values["storage_path"])
    values["storage_path"] = storage if storage.is_absolute() else folder / storage
    return load_settings(base=Settings(), **values)


# ---- serve ---------------------------------------------------------------------------------

def _add_serve(subcommands: Commands, storage: argparse.ArgumentParser) -> None:
    p = subcommands.add_parser("serve", parents=[storage],
                            help="run the OTLP/HTTP collector in the foreground",
                            description="Run the collector until Ctrl-C (or SIGTERM), then "
                                        "flush the store and exit.")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 4281; 0 picks a free port)")
    p.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        collector = halo_nb.serve(host=args.host, port=args.port)
        settings = halo_nb.settings()
        where = (f"{settings.storage_path} (durability = {settings.durability})"
                 if settings.persist else "memory only (persist = false)")
        print(f"halo: collector listening on {collector.url} "
              f"(OTLP/HTTP: POST {collector.url}/v1/traces)", flush=True)
        print(f"halo: storage {where}; Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            pass
        halo_nb.stop()
        store = halo_nb.store()
        store.close()
        print(f"halo: stopped; {len(store)} spans stored", flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK


# ---- list-traces ---------------------------------------------------------------------------

def _add_list_traces(subcommands: Commands, storage: argparse.ArgumentParser) -> None:
    p = subcommands.add_parser("list-traces", parents=[storage], help="list stored traces",
                             description="List stored traces, newest first.")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.add_argument("--limit", type=_non_negative, default=0,
                   help="show at most this many traces (default 0: all)")
    p.add_argument("--status", choices=commands.TRACE_STATUSES,
                   help="only traces with this status (open: still running)")
    p.add_argument("--name", metavar="TEXT",
                   help="only traces whose root span name contains TEXT (any case)")
    p.set_defaults(run=_list_traces)


def _list_traces(args: argparse.Namespace) -> int:
    table, matched = commands.trace_listing(limit=args.limit, status=args.status,
                                            name=args.name)
    rows = table.to_dicts()
    if args.json:
        print(json.dumps([_trace_json(row) for row in rows], ensure_ascii=False, indent=1))
        return EXIT_OK
    if not rows:
        filtered = args.status is not None or bool(args.name)
        print("no stored trace matches the filters" if filtered
              else f"no traces stored in {halo_nb.settings().storage_path}", file=sys.stderr)
        return EXIT_OK
    columns = ["TRACE ID", "NAME", "START", "DURATION", "SPANS", "STATUS"]
    show_origin = any(row["origin"] for row in rows)
    if show_origin:
        columns.append("ORIGIN")
    lines = []
    for row in rows:
        cells = [row["trace_id"], commands.clip(row["name"] or "", 40),
                 _local_time(row["start_ns"]), commands.duration_text(row["duration_ms"]),
                 str(row["span_count"]),
                 str(row["status"]) + ("" if row["ended"] else " (open)")]
        if show_origin:
            cells.append(row["origin"] or "")
        lines.append(cells)
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(columns)]
    right = {"DURATION", "SPANS"}
    for cells in (columns, *lines):
        print("  ".join(cell.rjust(w) if columns[i] in right else cell.ljust(w)
                        for i, (cell, w) in enumerate(zip(cells, widths, strict=True))).rstrip())
    if table.height < matched:
        print(f"({table.height} of {matched} traces; --limit 0 shows all)")
    return EXIT_OK


# ---- show / analyze ------------------------------------------------------------------------

def _add_show(subcommands: Commands, storage: argparse.ArgumentParser) -> None:
    p = subcommands.add_parser("show", parents=[storage], help="print one trace's span tree",
                             description="Print one trace as a span tree: each span's kind, "
                                         "duration, status and findings.")
    p.add_argument("trace_id", metavar="TRACE", help="trace id (or unique prefix)")
    p.set_defaults(run=_show)


def _show(args: argparse.Namespace) -> int:
    print(commands.show_trace(args.trace_id))
    return EXIT_OK


def _add_analyze(subcommands: Commands, storage: argparse.ArgumentParser) -> None:
    p = subcommands.add_parser(
        "analyze", parents=[storage], help="find failure clusters, hypotheses and blame",
        description="Analyse the stored traces (or some): findings, failure clusters with "
                    "their hypotheses and fixes, and the decisive step of each failed trace.")
    p.add_argument("--trace-id", nargs="+", action="extend", metavar="ID",
                   help="only these traces (ids or unique prefixes)")
    p.add_argument("--model", metavar="MODEL",
                   help="model for the narratives: smollm2, a .gguf path, openai:<url>, or "
                        "none (default: the settings)")
    p.add_argument("--json", action="store_true",
                   help="print the whole result (findings, clusters, hypotheses, blame) as JSON")
    p.add_argument("--source", nargs="+", action="extend", metavar="PATH",
                   help="analyse these storage folders, snapshot files, globs or URLs "
                        "instead of the store (trace ids then in full)")
    p.add_argument("--engine", choices=("local", "dask"), default="local",
                   help="local: this process (default); dask: a Dask cluster (the "
                        "'distributed' extra), for corpora past one machine's memory")
    p.add_argument("--address", metavar="HOST:PORT",
                   help="the Dask scheduler (default: a local cluster for this run)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes of the local cluster (default: one per CPU)")
    p.add_argument("--scratch", metavar="DIR",
                   help="folder for the shuffle files, shared by every worker (default: "
                        "a temporary folder, right for a local cluster)")
    p.set_defaults(run=_analyze)


def _analyze(args: argparse.Namespace) -> int:
    overrides = {"model": args.model} if args.model else {}
    result = commands.analyze(args.trace_id, source=args.source, engine=args.engine,
                              address=args.address, workers=args.workers,
                              scratch=args.scratch, **overrides)
    print(result.to_json(indent=1) if args.json else commands.analysis_text(result))
    return EXIT_OK


def _trace_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "trace_id": row["trace_id"],
        "name": row["name"],
        "start": _utc_time(row["start_ns"]),
        "start_ns": row["start_ns"],
        "duration_ms": row["duration_ms"],
        "span_count": row["span_count"],
        "status": str(row["status"]),
        "error_count": row["error_count"],
        "tokens_total": row["tokens_total"],
        "service": row["service"],
        "origin": row["origin"],
        "ended": row["ended"],
    }


def _add_explain(subcommands: Commands, storage: argparse.ArgumentParser) -> None:
    p = subcommands.add_parser(
        "explain", parents=[storage], help="which step broke a run: outcome and blame",
        description="Explain one stored trace, or every trace of a snapshot file: its outcome "
                    "and, for a failed run, the decisive step, its agent and the reasons.")
    p.add_argument("target", metavar="TRACE|SNAPSHOT",
                   help="trace id (or unique prefix), or a snapshot file")
    p.add_argument("--failed", action="store_true",
                   help="treat the run(s) as failed (when you know they failed)")
    p.set_defaults(run=_explain)


def _explain(args: argparse.Namespace) -> int:
    print(commands.explain(args.target, failed=args.failed))
    return EXIT_OK


# ---- export / import -----------------------------------------------------------------------

def _add_export(subcommands: Commands, storage: argparse.ArgumentParser) -> None:
    p = subcommands.add_parser("export", parents=[storage], help="write traces to a snapshot file",
                            description="Write traces to one portable snapshot JSON file.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--trace-id", nargs="+", action="extend", metavar="ID",
                       help="trace id(s) or unique prefixes to export")
    which.add_argument("--all", action="store_true", help="export every stored trace")
    p.add_argument("--output", "-o", type=Path, required=True, metavar="FILE",
                   help="snapshot file to write")
    p.add_argument("--with-findings", action="store_true",
                   help="run the analysis and include its findings")
    p.set_defaults(run=_export)


def _export(args: argparse.Namespace) -> int:
    done = commands.export(None if args.all else args.trace_id, args.output,
                           with_findings=args.with_findings)
    print(f"wrote {done.path}: {done.traces} traces, {done.spans} spans")
    return EXIT_OK


def _add_import(subcommands: Commands, storage: argparse.ArgumentParser) -> None:
    p = subcommands.add_parser("import", parents=[storage], help="load a snapshot file",
                            description="Load a snapshot file into the store (all or nothing; "
                                        "importing twice changes nothing).")
    p.add_argument("--file", "-f", type=Path, required=True, metavar="FILE")
    p.set_defaults(run=_import)


def _import(args: argparse.Namespace) -> int:
    result = commands.import_snapshot(args.file)
    print(f"imported {result.path}: {len(result.trace_ids)} traces, {result.spans_added} spans "
          f"added, {result.spans_already_present} already present")
    return EXIT_OK


# ---- replay --------------------------------------------------------------------------------

def _add_replay(subcommands: Commands, storage: argparse.ArgumentParser) -> None:
    p = subcommands.add_parser("replay", help="re-send a snapshot's spans to an OTLP/HTTP endpoint",
                            description="Re-send a snapshot's spans to an OTLP/HTTP endpoint.")
    p.add_argument("--file", "-f", type=Path, required=True, metavar="FILE")
    p.add_argument("--endpoint", required=True, metavar="URL",
                   help="base URL (http://host:4318) or full .../v1/traces URL")
    p.add_argument("--json", action="store_true", help="send OTLP JSON instead of protobuf")
    p.add_argument("--fresh-ids", action="store_true",
                   help="give every trace and span a new id (so the replay sits beside the "
                        "original)")
    p.add_argument("--shift-to-now", action="store_true",
                   help="move timestamps so the earliest span starts now")
    p.set_defaults(run=_replay)


def _replay(args: argparse.Namespace) -> int:
    from .interchange.replay import traces_url

    try:
        traces_url(args.endpoint)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    result = halo_nb.replay(args.file, args.endpoint, encoding="json" if args.json else "protobuf",
                            fresh_ids=args.fresh_ids, shift_to_now=args.shift_to_now)
    print(f"replayed {result.spans_sent} spans of {result.traces_sent} traces to "
          f"{result.endpoint} ({result.encoding}, {result.requests} requests)")
    if result.spans_rejected:
        print(f"the endpoint rejected {result.spans_rejected} spans: "
              + "; ".join(result.messages), file=sys.stderr)
    if args.fresh_ids:
        for old, new in result.trace_ids.items():
            print(f"  {old} -> {new}")
    return EXIT_DATA if result.spans_rejected else EXIT_OK


# ---- compare -------------------------------------------------------------------------------

def _add_compare(subcommands: Commands, storage: argparse.ArgumentParser) -> None:
    p = subcommands.add_parser("compare", parents=[storage], help="compare two traces",
                            description="Align two traces' span trees and show what changed.")
    p.add_argument("trace_a", metavar="A", help="trace id (or unique prefix)")
    p.add_argument("trace_b", metavar="B", help="trace id (or unique prefix)")
    p.add_argument("--json", action="store_true",
                   help="print the summary and every aligned pair as JSON")
    p.set_defaults(run=_compare)


def _compare(args: argparse.Namespace) -> int:
    result = commands.compare(args.trace_a, args.trace_b)
    if args.json:
        print(json.dumps({"summary": result.summary, "spans": result.frame.to_dicts()},
                         ensure_ascii=False, indent=1, default=str))
    else:
        print(result.to_text())
    return EXIT_OK


# ---- check ---------------------------------------------------------------------------------

EXIT_REGRESSION = 3


def _add_check(subcommands: Commands, storage: argparse.ArgumentParser) -> None:
    from .interchange.check import DEFAULT_MAX_GROWTH, DEFAULT_MIN_SEVERITY
    from .rlm.registry import SEVERITIES

    p = subcommands.add_parser(
        "check", help="fail when failure clusters are new or grew (for CI)",
        description="Analyse a baseline and a current set of traces (a snapshot file or a "
                    "folder of them) and report failure clusters that are new or whose "
                    "prevalence grew by more than --max-growth.",
        epilog="Exit codes: 0 no regression, 1 usage error, 2 data error, 3 regression found.")
    p.add_argument("--baseline", required=True, type=Path, metavar="SNAPSHOT_OR_DIR")
    p.add_argument("--current", required=True, type=Path, metavar="SNAPSHOT_OR_DIR")
    p.add_argument("--max-growth", type=float, default=DEFAULT_MAX_GROWTH, metavar="SHARE",
                   help="allowed growth of a cluster's prevalence, as a share of traces "
                        f"(default {DEFAULT_MAX_GROWTH}: ten percentage points)")
    p.add_argument("--min-severity", choices=SEVERITIES, default=DEFAULT_MIN_SEVERITY,
                   help=f"clusters below this severity never fail the check "
                        f"(default {DEFAULT_MIN_SEVERITY})")
    p.add_argument("--min-traces", type=_non_negative, metavar="N",
                   help="traces each side needs (default: min_traces_for_systemic_analysis)")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write a JUnit XML report")
    p.add_argument("--summary", type=Path, metavar="FILE.md",
                   help="write a markdown summary (e.g. $GITHUB_STEP_SUMMARY)")
    p.set_defaults(run=_check)


def _check(args: argparse.Namespace) -> int:
    from .interchange.check import check

    if not 0.0 <= args.max_growth <= 1.0:
        raise UsageError(f"--max-growth: must be within 0..1, got {args.max_growth}")
    settings = halo_nb.settings()
    if args.min_traces:
        settings = settings.replace(min_traces_for_systemic_analysis=args.min_traces)
    result = check(args.baseline, args.current, max_growth=args.max_growth,
                   min_severity=args.min_severity, settings=settings)
    if args.junit is not None:
        args.junit.write_text(result.to_junit(), encoding="utf-8")
    if args.summary is not None:
        args.summary.write_text(result.to_markdown(), encoding="utf-8")
    print(result.to_text())
    return EXIT_OK if result.ok else EXIT_REGRESSION


# ---- helpers -------------------------------------------------------------------------------

def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _local_time(ns: int | None) -> str:
    if ns is None:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _utc_time(ns: int | None) -> str | None:
    if ns is None:
        return None
    stamp = dt.datetime.fromtimestamp(ns / 1e9, dt.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_data_error(exc: BaseException) -> bool:
    from .ingest.server import CollectorError
    from .interchange.replay import ReplayError

    # ValueError covers SnapshotError, OTLPDecodeError and OTLPEncodeError; KeyError
    # covers UnknownTraceError; OSError covers missing and unreadable files.
    return isinstance(exc, (CommandError, ValueError, KeyError, OSError,
                            CollectorError, ReplayError))


def _fail(exc: BaseException, code: int, internal: bool = False) -> int:
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        message = f"{exc.filename}: {exc.strerror}"
    else:
        message = str(exc) or type(exc).__name__
    message = " ".join(message.split())
    debug = bool(os.environ.get("HALO_DEBUG"))
    if internal:
        message = f"internal error: {type(exc).__name__}: {message}"
        if not debug:
            message += " (HALO_DEBUG=1 shows the traceback)"
    print(f"halo: error: {message}", file=sys.stderr)
    if debug:
        traceback.print_exception(exc)
    return code


def _close_store() -> None:
    """Flush what this command stored before the process exits."""
    from . import runtime

    runtime.reset()


if __name__ == "__main__":
    sys.exit(main())
