"""``%halo``: the notebook's command line. Parses a line, calls the public API, prints.

    %halo serve [--port N] [--host H]   start the collector in this kernel
    %halo stop                          stop it (stored spans stay)
    %halo status                        where it listens, counters, what is stored
    %halo list [N]                      the N most recent traces (default 20)
    %halo export ID... PATH             write traces to a snapshot (--all: every trace)
    %halo import PATH                   load a snapshot
    %halo compare A B                   what changed between two traces

Trace ids may be shortened to any unique prefix. Errors print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import halo_nb

DEFAULT_LIST_ROWS = 20
LIST_COLUMNS = ("trace_id", "name", "start", "duration_ms", "span_count", "llm_count",
                "tool_count", "tokens_total", "status", "origin")


class _UsageError(Exception):
    """A line the parser rejects; its message is the one line shown."""


class _HelpShown(Exception):
    """``-h``/``help``: the parser printed the help, nothing else to do."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (try %halo --help)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            print(message, file=sys.stderr, end="")
        raise _HelpShown


def register(ipython: Any) -> None:
    """Register ``%halo`` as a line magic of ``ipython``."""
    ipython.register_magic_function(halo_magic, magic_kind="line", magic_name="halo")


def halo_magic(line: str) -> None:
    """%halo serve|stop|status|list|export|import|compare — see ``%halo --help``."""
    try:
        args = _parser().parse_args(shlex.split(line) or ["--help"])
    except _HelpShown:
        return
    except (_UsageError, ValueError) as exc:
        print(f"%halo: {exc}", file=sys.stderr)
        return
    try:
        args.run(args)
    except Exception as exc:  # noqa: BLE001 - a magic reports failures as one line
        print(f"%halo {args.command}: {_message(exc)}", file=sys.stderr)


def _parser() -> _Parser:
    parser = _Parser(prog="%halo", description="halo_nb: the trace collector and stored traces.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, run: Callable[[argparse.Namespace], None],
                help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    serve = command("serve", _serve, "start the OTLP/HTTP collector in this kernel")
    serve.add_argument("--port", type=int, help="port to listen on (0: any free port)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    command("stop", _stop, "stop the collector; stored spans stay")
    command("status", _status, "collector address and counters, spans and traces stored")
    listing = command("list", _list, "the most recent traces")
    listing.add_argument("count", nargs="?", type=int, default=DEFAULT_LIST_ROWS,
                         help=f"how many (default {DEFAULT_LIST_ROWS})")
    export = command("export", _export, "write traces to a portable snapshot file")
    export.add_argument("--all", action="store_true", help="export every stored trace")
    export.add_argument("trace_ids", nargs="*", metavar="ID", help="trace ids (or prefixes)")
    export.add_argument("path", metavar="PATH", help="the snapshot file to write")
    load = command("import", _import, "load a snapshot file into the store")
    load.add_argument("path", metavar="PATH")
    compare = command("compare", _compare, "align two traces and show what changed")
    compare.add_argument("trace_a", metavar="A")
    compare.add_argument("trace_b", metavar="B")
    return parser


def _serve(args: argparse.Namespace) -> None:
    options = {key: value for key, value in (("port", args.port), ("host", args.host))
               if value is not None}
    collector = halo_nb.serve(**options)
    print(f"halo collector listening on {collector.url} "
          f"(OTLP/HTTP traces: {collector.traces_url})")
    print(f"point agents at it with OTEL_EXPORTER_OTLP_ENDPOINT={collector.url}")


def _stop(args: argparse.Namespace) -> None:
    from . import runtime

    collector = runtime.collector()
    running = collector is not None and collector.running
    halo_nb.stop()
    print("halo collector stopped" if running else "halo collector was not running")


def _status(args: argparse.Namespace) -> None:
    from . import runtime
    from .sdk import exporting_to

    settings = halo_nb.settings()
    collector = runtime.collector()
    store = halo_nb.store()
    rows = []
    if collector is not None and collector.running:
        counts = collector.counts
        rows += [
            ("collector", f"listening on {collector.url}"),
            ("requests", f"{counts.requests_accepted} accepted, "
                         f"{counts.requests_rejected} rejected"),
            ("spans received", f"{counts.spans_accepted} accepted, "
                               f"{counts.spans_rejected} rejected"),
        ]
    else:
        rows.append(("collector", "not running (%halo serve starts it)"))
    rows += [
        ("spans stored", f"{len(store)}"),
        ("traces stored", f"{len(store.trace_ids())}"),
        ("storage", str(settings.storage_path.resolve()) if settings.persist
         else "memory only (persist = false)"),
        ("SDK spans", f"OTLP to {exporting_to()}" if exporting_to() else "stored in-process"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


def _list(args: argparse.Namespace) -> None:
    import polars as pl
    from IPython.display import display

    if args.count < 1:
        raise ValueError(f"count must be at least 1, got {args.count}")
    table = halo_nb.trace_table()
    if table.height == 0:
        print("no traces stored yet")
        return
    recent = table.sort("start_ns", descending=True).head(args.count).with_columns(
        pl.from_epoch("start_ns", time_unit="ns").dt.cast_time_unit("ms").alias("start"),
        pl.col("duration_ms").round(1))
    with pl.Config(tbl_cols=-1, tbl_rows=-1, fmt_str_lengths=48, tbl_width_chars=240,
                   tbl_hide_dataframe_shape=True):  # whole ids, to paste into other commands
        display(recent.select(LIST_COLUMNS))
    if table.height > args.count:
        print(f"{args.count} of {table.height} traces; %halo list N shows more")


def _export(args: argparse.Namespace) -> None:
    if args.all == bool(args.trace_ids):
        raise ValueError("give trace ids or --all (not both)")
    selection = None if args.all else _resolve_ids(args.trace_ids)
    path = halo_nb.export_snapshot(selection, args.path)
    count = len(halo_nb.store().trace_ids()) if selection is None else len(selection)
    print(f"wrote {count} trace(s) to {path}")


def _import(args: argparse.Namespace) -> None:
    result = halo_nb.import_snapshot(args.path)
    print(f"imported {len(result.trace_ids)} trace(s) from {result.path}: "
          f"{result.spans_added} new span(s), {result.spans_already_present} already stored")


def _compare(args: argparse.Namespace) -> None:
    trace_a, trace_b = _resolve_ids([args.trace_a, args.trace_b])
    print(halo_nb.compare(trace_a, trace_b).to_text())


def _resolve_ids(given: list[str]) -> list[str]:
    """Full trace ids for ids or unique prefixes of stored ones."""
    known = halo_nb.store().trace_ids()
    known_set = set(known)
    resolved = []
    for text in given:
        key = text.lower()
        if key in known_set:
            resolved.append(key)
            continue
        matches = [trace_id for trace_id in known if trace_id.startswith(key)]
        if not matches:
            raise ValueError(f"unknown trace id {text!r}")
        if len(matches) > 1:
            raise ValueError(f"trace id prefix {text!r} is ambiguous ({len(matches)} traces)")
        resolved.append(matches[0])
    return resolved


def _message(exc: Exception) -> str:
    if isinstance(exc, KeyError) and type(exc).__str__ is KeyError.__str__ and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__
