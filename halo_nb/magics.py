"""``%halo``: the notebook's command line. Parses a line, calls the command layer
(``commands.py``, shared with the ``halo`` CLI), prints.

    %halo serve [--port N] [--host H]   start the collector in this kernel
    %halo stop                          stop it (stored spans stay)
    %halo status                        where it listens, counters, what is stored
    %halo list [N] [--status S] [--name TEXT]   the N most recent traces (default 20)
    %halo show ID                       one trace's span tree with findings
    %halo analyze [ID...]               clusters, hypotheses and blame
    %halo export ID... PATH             write traces to a snapshot (--all: every trace)
    %halo import PATH                   load a snapshot
    %halo compare A B                   what changed between two traces

Trace ids may be shortened to a unique prefix of at least 4 characters, as in the CLI.
Errors print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import halo_nb

from . import commands

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
    """%halo serve|stop|status|list|show|analyze|export|import|compare — see ``%halo --help``."""
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
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, run: Callable[[argparse.Namespace], None],
                help: str) -> argparse.ArgumentParser:
        sub = subcommands.add_parser(name, help=help, description=help)
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
    listing.add_argument("--status", choices=commands.TRACE_STATUSES,
                         help="only traces with this status (open: still running)")
    listing.add_argument("--name", help="only traces whose root span name contains this")
    show = command("show", _show, "one trace's span tree: kinds, durations, status, findings")
    show.add_argument("trace_id", metavar="ID")
    analysis = command("analyze", _analyze, "failure clusters, hypotheses and blame")
    analysis.add_argument("trace_ids", nargs="*", metavar="ID",
                          help="only these traces (default: every stored trace)")
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
    rows = commands.status_rows()
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        if label == "collector" and value == "not running":
            value += " (%halo serve starts it)"
        print(f"{label:<{width}}  {value}")


def _list(args: argparse.Namespace) -> None:
    import polars as pl
    from IPython.display import display

    if args.count < 1:
        raise ValueError(f"count must be at least 1, got {args.count}")
    recent, matched = commands.trace_listing(limit=args.count, status=args.status,
                                             name=args.name)
    if recent.height == 0:
        print("no stored trace matches" if args.status or args.name else "no traces stored yet")
        return
    recent = recent.with_columns(
        pl.from_epoch("start_ns", time_unit="ns").dt.cast_time_unit("ms").alias("start"),
        pl.col("duration_ms").round(1))
    with pl.Config(tbl_cols=-1, tbl_rows=-1, fmt_str_lengths=48, tbl_width_chars=240,
                   tbl_hide_dataframe_shape=True):  # whole ids, to paste into other commands
        display(recent.select(LIST_COLUMNS))
    if matched > recent.height:
        print(f"{recent.height} of {matched} traces; %halo list N shows more")


def _export(args: argparse.Namespace) -> None:
    if args.all == bool(args.trace_ids):
        raise ValueError("give trace ids or --all (not both)")
    done = commands.export(None if args.all else args.trace_ids, args.path)
    print(f"wrote {done.traces} trace(s) to {done.path}")


def _import(args: argparse.Namespace) -> None:
    result = commands.import_snapshot(args.path)
    print(f"imported {len(result.trace_ids)} trace(s) from {result.path}: "
          f"{result.spans_added} new span(s), {result.spans_already_present} already stored")


def _compare(args: argparse.Namespace) -> None:
    print(commands.compare(args.trace_a, args.trace_b).to_text())


def _show(args: argparse.Namespace) -> None:
    print(commands.show_trace(args.trace_id))


def _analyze(args: argparse.Namespace) -> None:
    print(commands.analysis_text(commands.analyze(args.trace_ids)))


def _message(exc: Exception) -> str:
    if isinstance(exc, KeyError) and type(exc).__str__ is KeyError.__str__ and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__
