"""The `halo` command as a user runs it: separate processes, real files, real exit codes,
HALO_STORAGE_PATH pointing at temporary folders, and `halo serve` fed by the OpenTelemetry
OTLP/HTTP exporter running in yet another process."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from halo_nb.config import load_settings
from halo_nb.ingest.server import Collector
from halo_nb.schema import SPAN_COLUMNS
from halo_nb.storage.store import SpanStore

HALO = [sys.executable, "-m", "halo_nb.cli"]
TIMEOUT = 60

# A user's agent: plain OpenTelemetry SDK, exporter configured by the standard variable.
EXPORTING_AGENT = textwrap.dedent("""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "cli-agent"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    tracer = provider.get_tracer("cli-agent", "0.1")
    ids = []
    for question in ("reset my password", "close my account"):
        with tracer.start_as_current_span("support-agent", attributes={
                "openinference.span.kind": "AGENT", "input.value": question}) as root:
            with tracer.start_as_current_span("search_kb", attributes={
                    "openinference.span.kind": "TOOL", "tool.name": "search_kb",
                    "output.value": "articles about " + question}):
                pass
            with tracer.start_as_current_span("answer", attributes={
                    "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
                    "llm.token_count.prompt": 50, "llm.token_count.completion": 10}):
                pass
        ids.append(format(root.get_span_context().trace_id, "032x"))
    provider.shutdown()
    print(" ".join(ids))
""")


def user_env(storage: Path | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HALO_", "OTEL_"))}
    if storage is not None:
        env["HALO_STORAGE_PATH"] = str(storage)
    env.update(extra)
    return env


def halo(*args: str, storage: Path | None, cwd: Path, **extra: str
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HALO, *args], capture_output=True, text=True, cwd=cwd,
                          env=user_env(storage, **extra), timeout=TIMEOUT)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int,
                          pattern: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("halo: error: ")
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stored_spans(storage: Path) -> pl.DataFrame:
    with SpanStore(storage) as store:
        return store.spans().sort("trace_id", "span_id")


@pytest.fixture
def recorded(tmp_path: Path, send_agent_runs) -> tuple[Path, list[str]]:
    """A storage folder holding two runs of the support agent (the second with a changed
    tool result and one more span), recorded through the real exporter."""
    storage = tmp_path / "recorded"
    with SpanStore(storage) as store, Collector(store, port=0) as collector:
        ids = send_agent_runs(collector.url, [
            {}, {"search_result": "0 articles", "extra_search": True}])
    return storage, ids


def test_version_from_the_module_and_the_installed_script(tmp_path):
    result = halo("--version", storage=None, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "halo 0.1.0 (halo_nb)"
    script = Path(sys.executable).with_name("halo")
    script = script if script.exists() else Path(shutil.which("halo") or "halo")
    installed = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                               cwd=tmp_path, env=user_env(None), timeout=TIMEOUT)
    assert installed.returncode == 0 and installed.stdout == result.stdout


@pytest.mark.parametrize("args, pattern", [
    ((), "a command is required"),
    (("bogus",), "invalid choice: 'bogus'"),
    (("list-traces", "--limit", "-1"), "must be >= 0"),
    (("list-traces", "--bogus"), "unrecognized arguments: --bogus"),
    (("export", "--output", "x.json"), "one of the arguments --trace-id --all is required"),
    (("export", "--all"), "--output"),
    (("export", "--all", "--trace-id", "abcd", "-o", "x.json"), "not allowed with"),
    (("compare", "only-one"), "required: B"),
    (("replay", "--file", "x.json", "--endpoint", "localhost:4318"), "http\\(s\\) URL"),
    (("serve", "--port", "70000"), "port: must be 0..65535"),
])
def test_usage_errors_exit_1_with_one_line(tmp_path, args, pattern, monkeypatch, capsys):
    # In-process (the same main() the script runs) to keep the fast tier fast; the
    # subprocess path is exercised by every other test here.
    code, _, err = run_in_process(args, tmp_path / "s", monkeypatch, capsys)
    assert_one_line_error(subprocess.CompletedProcess(args, code, "", err), 1, pattern)


def run_in_process(args: tuple[str, ...] | list[str], storage: Path,
                   monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                   ) -> tuple[int, str, str]:
    """``halo ARGS`` through cli.main in this process, as a user with HALO_STORAGE_PATH."""
    from halo_nb import cli

    for key in list(os.environ):
        if key.startswith(("HALO_", "OTEL_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HALO_STORAGE_PATH", str(storage))
    monkeypatch.chdir(storage.parent)
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_traces_filters_by_status_and_name(tmp_path, recorded, monkeypatch, capsys):
    storage, (first, second) = recorded
    with SpanStore(storage) as store:
        failing = store.spans(second).with_columns(
            trace_id=pl.lit("f" * 32), status=pl.lit("error").cast(store.spans()["status"].dtype),
            name=pl.lit("Billing-Agent"))
        store.append(failing)
    code, out, _ = run_in_process(["list-traces", "--status", "error", "--json"], storage,
                                  monkeypatch, capsys)
    assert code == 0 and [row["trace_id"] for row in json.loads(out)] == ["f" * 32]
    code, out, _ = run_in_process(["list-traces", "--name", "billing"], storage,
                                  monkeypatch, capsys)
    assert code == 0 and "f" * 32 in out and first not in out
    code, out, _ = run_in_process(["list-traces", "--status", "ok", "--name", "support",
                                   "--json"], storage, monkeypatch, capsys)
    assert {row["trace_id"] for row in json.loads(out)} <= {first, second}
    code, _, err = run_in_process(["list-traces", "--name", "nothing-like-this"], storage,
                                  monkeypatch, capsys)
    assert code == 0 and "no stored trace matches the filters" in err


def test_id_prefixes_follow_one_rule(tmp_path, recorded, monkeypatch, capsys):
    storage, (first, _) = recorded
    code, out, _ = run_in_process(["show", first[:4]], storage, monkeypatch, capsys)
    assert code == 0 and out.startswith(f"trace {first}")
    code, _, err = run_in_process(["show", first[:3]], storage, monkeypatch, capsys)
    assert code == 2 and "is too short: give at least 4 characters" in err
    code, _, err = run_in_process(["show", "0000"], storage, monkeypatch, capsys)
    assert code == 2 and "no stored trace with id '0000'" in err
    with SpanStore(storage) as store:  # a second trace sharing the first 4 digits
        store.append(store.spans(first).with_columns(trace_id=pl.lit(first[:4] + "0" * 28)))
    code, _, err = run_in_process(["show", first[:4]], storage, monkeypatch, capsys)
    assert code == 2 and "is ambiguous: 2 traces start with it" in err


def test_show_prints_the_span_tree_with_status_and_findings(tmp_path, recorded, monkeypatch,
                                                             capsys):
    storage, (_, second) = recorded
    code, out, _ = run_in_process(["show", second], storage, monkeypatch, capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"trace {second}  5 spans")
    assert re.match(r"└─ support-agent  \[agent, [0-9.]+ ms\]", lines[1])
    assert any(re.match(r"   ├─ search_kb  \[tool, [0-9.]+ ms\]", line) for line in lines)
    assert any("search_web" in line for line in lines)


def test_analyze_and_explain_in_the_terminal(tmp_path, recorded, monkeypatch, capsys):
    storage, (first, second) = recorded
    code, out, _ = run_in_process(["analyze", "--model", "none"], storage, monkeypatch, capsys)
    assert code == 0 and out.startswith("2 traces analysed; findings:")
    code, out, _ = run_in_process(["analyze", "--model", "none", "--json"], storage,
                                  monkeypatch, capsys)
    result = json.loads(out)
    assert result["trace_count"] == 2 and {"findings", "clusters", "blame"} <= set(result)
    code, out, _ = run_in_process(["explain", second[:8], "--failed"], storage, monkeypatch,
                                  capsys)
    assert code == 0 and out.startswith(f"trace {second}: FAILED (from user)")
    assert "decisive step:" in out
    snapshot = tmp_path / "two.json"
    assert run_in_process(["export", "--all", "-o", str(snapshot)], storage, monkeypatch,
                          capsys)[0] == 0
    code, out, _ = run_in_process(["explain", str(snapshot)], tmp_path / "empty", monkeypatch,
                                  capsys)
    assert code == 0 and f"trace {first}:" in out and f"trace {second}:" in out


def test_init_writes_a_commented_config_and_the_storage_folder(tmp_path):
    project = tmp_path / "project"
    result = halo("init", "--dir", str(project), "--port", "0", storage=None, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = project / "halo.toml"
    text = config.read_text()
    assert text.startswith("# halo.toml") and "port = 0" in text
    assert sum(line.startswith("#") for line in text.splitlines()) >= 10
    settings = load_settings(start=project)
    assert settings.storage_path == project / ".halo" / "data" and settings.port == 0
    assert settings.storage_path.is_dir()

    again = halo("init", "--dir", str(project), storage=None, cwd=tmp_path)
    assert_one_line_error(again, 1, "already exists; use --force")
    assert config.read_text() == text
    forced = halo("init", "--dir", str(project), "--force", storage=None, cwd=tmp_path)
    assert forced.returncode == 0 and "port = 4281" in config.read_text()

    # Commands run in the project folder use the storage halo.toml names.
    listed = halo("list-traces", storage=None, cwd=project)
    assert listed.returncode == 0
    assert listed.stderr.strip() == f"no traces stored in {project / '.halo' / 'data'}"


def test_serve_receives_spans_from_an_exporter_process_and_stops_on_sigint(tmp_path):
    storage = tmp_path / "served"
    server = subprocess.Popen([*HALO, "serve", "--port", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                              env=user_env(storage))
    try:
        banner = server.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:(\d+)) ", banner)
        assert match, (banner, server.stderr.read() if server.poll() is not None else "")
        assert int(match.group(2)) not in (0, 4281)
        assert str(storage) in server.stdout.readline()

        agent = subprocess.run(
            [sys.executable, "-c", EXPORTING_AGENT], capture_output=True, text=True,
            cwd=tmp_path, timeout=TIMEOUT,
            env=user_env(None, OTEL_EXPORTER_OTLP_ENDPOINT=match.group(1)))
        assert agent.returncode == 0, agent.stderr
        trace_ids = agent.stdout.split()

        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=TIMEOUT)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped; 6 spans stored" in out

    listed = halo("list-traces", "--json", storage=storage, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    traces = json.loads(listed.stdout)
    assert sorted(t["trace_id"] for t in traces) == sorted(trace_ids)
    assert {t["name"] for t in traces} == {"support-agent"}
    assert all(t["span_count"] == 3 and t["status"] == "unset" for t in traces)
    assert all(t["tokens_total"] == 60 and t["service"] == "cli-agent" for t in traces)

    table = halo("list-traces", storage=storage, cwd=tmp_path)
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["TRACE", "ID", "NAME", "START", "DURATION", "SPANS", "STATUS"]
    assert sorted(row.split()[0] for row in rows) == sorted(trace_ids)
    assert all(row.split()[1] == "support-agent" for row in rows)

    limited = halo("list-traces", "--limit", "1", storage=storage, cwd=tmp_path)
    assert len(limited.stdout.splitlines()) == 3
    assert limited.stdout.splitlines()[-1] == "(1 of 2 traces; --limit 0 shows all)"


def test_serve_stops_on_sigterm_and_reports_a_busy_port(tmp_path):
    storage = tmp_path / "served"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = halo("serve", "--port", str(busy.getsockname()[1]), storage=storage, cwd=tmp_path)
    assert_one_line_error(taken, 2, "already in use")

    server = subprocess.Popen([*HALO, "serve", "--port", str(free_port())],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=tmp_path, env=user_env(storage))
    try:
        assert "listening on" in server.stdout.readline()
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=TIMEOUT)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    assert "stopped; 0 spans stored" in out


def test_export_then_import_into_another_storage(tmp_path, recorded):
    storage, (first, second) = recorded
    exported = halo("export", "--trace-id", first[:8], "--output", "one.json", storage=storage,
                    cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.strip() == "wrote one.json: 1 traces, 4 spans"
    everything = halo("export", "--all", "-o", "snaps/all.json", storage=storage, cwd=tmp_path)
    assert everything.stdout.strip() == "wrote snaps/all.json: 2 traces, 9 spans"
    analysed = halo("export", "--trace-id", second, "--with-findings", "-o", "findings.json",
                    storage=storage, cwd=tmp_path)
    assert analysed.returncode == 0, analysed.stderr
    envelope = json.loads((tmp_path / "findings.json").read_text())
    assert isinstance(envelope["findings"], list) and "findings_checksum" in envelope
    assert {f["trace_id"] for f in envelope["findings"]} <= {second}

    other = tmp_path / "teammate"
    imported = halo("import", "--file", "snaps/all.json", storage=other, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == (
        "imported snaps/all.json: 2 traces, 9 spans added, 0 already present")
    again = halo("import", "--file", "snaps/all.json", storage=other, cwd=tmp_path)
    assert again.stdout.strip() == (
        "imported snaps/all.json: 2 traces, 0 spans added, 9 already present")

    original, copied = stored_spans(storage), stored_spans(other)
    for column in SPAN_COLUMNS:
        if column != "origin":
            assert copied[column].to_list() == original[column].to_list(), column
    assert set(copied["origin"]) == {"all.json"}
    table = halo("list-traces", storage=other, cwd=tmp_path).stdout.splitlines()
    assert table[0].split()[-1] == "ORIGIN" and all(r.endswith("all.json") for r in table[1:])


def test_data_errors_exit_2_and_import_nothing(tmp_path, recorded, monkeypatch, capsys):
    storage, (first, _) = recorded
    halo("export", "--all", "-o", "good.json", storage=storage, cwd=tmp_path)
    good = (tmp_path / "good.json").read_text()
    (tmp_path / "edited.json").write_text(good.replace("0 articles", "9 articles"))
    (tmp_path / "cut.json").write_text(good[: len(good) // 2])
    (tmp_path / "v9.json").write_text(good.replace('"version": 1', '"version": 9'))
    target = tmp_path / "target"
    halo("import", "--file", "good.json", storage=target, cwd=tmp_path)
    (tmp_path / "target-copy").mkdir()
    before = stored_spans(target)

    cases = [
        (("import", "--file", "missing.json"), "missing.json: No such file"),
        (("import", "--file", "edited.json"), "checksum mismatch"),
        (("import", "--file", "cut.json"), "ends before its JSON document"),
        (("import", "--file", "v9.json"), "version 9 is not supported"),
        (("export", "--trace-id", "f" * 32, "-o", "x.json"), "no stored trace with id"),
        (("compare", first, "e" * 32), "no stored trace with id 'e{32}'"),
        (("replay", "--file", "good.json", "--endpoint", f"http://127.0.0.1:{free_port()}"),
         "cannot reach"),
    ]
    for args, pattern in cases:  # in-process: the same main() as the script, faster
        code, _, err = run_in_process(args, target, monkeypatch, capsys)
        assert_one_line_error(subprocess.CompletedProcess(args, code, "", err), 2, pattern)
    assert stored_spans(target).equals(before)
    assert not (tmp_path / "x.json").exists()


def test_compare_two_runs(tmp_path, recorded):
    storage, (first, second) = recorded
    text = halo("compare", first[:6], second, storage=storage, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "1 added, 0 removed, 0 status changed, 1 changed, 3 unchanged" in text.stdout
    assert "first difference at support-agent/search_kb" in text.stdout
    assert re.search(r"changed  support-agent/search_kb .*tool_result '3 articles.*"
                     r"-> '0 articles'", text.stdout)
    assert re.search(r"added  support-agent/search_web", text.stdout)

    as_json = halo("compare", first, second, "--json", storage=storage, cwd=tmp_path)
    data = json.loads(as_json.stdout)
    assert data["summary"]["added"] == 1 and data["summary"]["trace_b"] == second
    rows = {row["path"]: row for row in data["spans"]}
    assert rows["support-agent/search_kb"]["tool_result_b"] == "0 articles"
    assert rows["support-agent/search_web"]["change"] == "added"


def test_replay_to_a_running_collector(tmp_path, recorded):
    storage, ids = recorded
    halo("export", "--all", "-o", "all.json", storage=storage, cwd=tmp_path)
    with SpanStore(None) as store, Collector(store, port=0) as collector:
        plain = halo("replay", "--file", "all.json", "--endpoint", collector.url,
                     storage=None, cwd=tmp_path)
        assert plain.returncode == 0, plain.stderr
        assert plain.stdout.strip() == (
            f"replayed 9 spans of 2 traces to {collector.traces_url} (protobuf, 1 requests)")
        assert sorted(store.trace_ids()) == sorted(ids)

        fresh = halo("replay", "--file", "all.json", "--endpoint", collector.traces_url,
                     "--json", "--fresh-ids", "--shift-to-now", storage=None, cwd=tmp_path)
        assert fresh.returncode == 0, fresh.stderr
        mapping = dict(line.split(" -> ") for line in fresh.stdout.strip().splitlines()[1:])
        assert {k.strip() for k in mapping} == set(ids)
        assert len(store) == 18 and set(store.trace_ids()) == set(ids) | set(mapping.values())
