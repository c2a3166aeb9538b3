"""%halo in a real IPython shell (and once in a real Jupyter kernel)."""

from __future__ import annotations

import importlib.util
import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

import halo_nb
from halo_nb import runtime
from halo_nb.ingest.server import Collector

HAS_SNAPSHOTS = importlib.util.find_spec("halo_nb.interchange.snapshot") is not None


@pytest.fixture
def shell(halo_runtime: Path) -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    result = ip.run_cell("%load_ext halo_nb")
    assert result.success
    yield ip
    ip.run_cell("%halo stop")


def run(ip: InteractiveShell, line: str, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    capsys.readouterr()
    result = ip.run_cell(line)
    assert result.success, result.error_in_exec  # a failing command never raises in the shell
    captured = capsys.readouterr()
    return captured.out, captured.err


def record_trace(name: str, tool_result: str = "ok", extra_step: bool = False) -> str:
    with halo_nb.start_trace(name, input="question") as trace:
        with trace.span("plan", type="llm", model="m") as llm:
            llm.record_tokens(input_tokens=10, output_tokens=2)
        with trace.span("search", type="tool", input={"q": "x"}) as tool:
            tool.set_output(tool_result)
        if extra_step:
            with trace.span("retry", type="tool"):
                pass
    return trace.trace_id


def test_serve_status_list_stop(shell: InteractiveShell, capsys: pytest.CaptureFixture[str],
                                halo_runtime: Path) -> None:
    out, err = run(shell, "%halo serve --port 0", capsys)
    collector = runtime.collector()
    assert collector is not None and collector.running and collector.port != 0
    assert f"listening on {collector.url}" in out and err == ""

    again, _ = run(shell, "%halo serve", capsys)
    assert runtime.collector() is collector and collector.url in again

    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
        "name": "over-http", "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000001000000000"}]}]}]}).encode()
    request = urllib.request.Request(collector.traces_url, body,
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    record_trace("in-process")

    status, _ = run(shell, "%halo status", capsys)
    lines = dict(re.fullmatch(r"(.+?)\s{2,}(.*)", line).groups() for line in status.splitlines())
    assert lines["collector"] == f"listening on {collector.url}"
    assert lines["requests"] == "1 accepted, 0 rejected"
    assert lines["spans received"] == "1 accepted, 0 rejected"
    assert lines["spans stored"] == "4"
    assert lines["traces stored"] == "2"
    assert lines["storage"] == str(halo_runtime.resolve())
    assert lines["SDK spans"] == "stored in-process"

    listing, _ = run(shell, "%halo list", capsys)
    assert "in-process" in listing and "over-http" in listing
    assert "5b8efff798038103d269b633813fc60c" in listing
    assert listing.index("in-process") < listing.index("over-http")  # newest first

    one, _ = run(shell, "%halo list 1", capsys)
    assert "in-process" in one and "over-http" not in one
    assert "1 of 2 traces" in one

    out, _ = run(shell, "%halo stop", capsys)
    assert out.strip() == "halo collector stopped"
    assert runtime.collector() is None and not collector.running
    status, _ = run(shell, "%halo status", capsys)
    assert re.search(r"^collector +not running", status, re.M)
    assert re.search(r"^spans stored +4$", status, re.M)
    out, _ = run(shell, "%halo stop", capsys)
    assert out.strip() == "halo collector was not running"


def test_list_with_nothing_stored(shell: InteractiveShell,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run(shell, "%halo list", capsys)
    assert out.strip() == "no traces stored yet"


@pytest.mark.parametrize(("line", "message"), [
    ("%halo fly", "invalid choice: 'fly'"),
    ("%halo list many", "invalid int value: 'many'"),
    ("%halo list 0", "count must be at least 1"),
    ("%halo serve --port 99999", "port: must be 0..65535"),
    ("%halo serve --port", "expected one argument"),
    ('%halo import "unclosed', "No closing quotation"),
    ("%halo compare abc", "the following arguments are required: B"),
    ("%halo export out.json", "give trace ids or --all"),
])
def test_errors_are_one_line_without_traceback(shell: InteractiveShell,
                                               capsys: pytest.CaptureFixture[str], line: str,
                                               message: str) -> None:
    out, err = run(shell, line, capsys)
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err
    assert err.startswith("%halo")


def test_port_in_use_is_reported_in_one_line(shell: InteractiveShell,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "%halo serve --port 0", capsys)
    taken = runtime.collector().port
    runtime.stop()
    with Collector(halo_nb.store(), port=taken):
        _, err = run(shell, f"%halo serve --port {taken}", capsys)
    assert f"port {taken}" in err and "already in use" in err
    assert len(err.strip().splitlines()) == 1


def test_help(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    out, err = run(shell, "%halo", capsys)
    for command in ("serve", "stop", "status", "list", "export", "import", "compare"):
        assert command in out
    out, _ = run(shell, "%halo serve --help", capsys)
    assert "--port" in out and "--host" in out


@pytest.mark.skipif(not HAS_SNAPSHOTS, reason="halo_nb.interchange.snapshot is not written yet")
def test_export_and_import(shell: InteractiveShell, capsys: pytest.CaptureFixture[str],
                           tmp_path: Path) -> None:
    first, second = record_trace("first"), record_trace("second")
    target = tmp_path / "shared" / "first.json"
    target.parent.mkdir()
    out, err = run(shell, f"%halo export {first[:8]} {target}", capsys)
    assert err == "" and out.strip() == f"wrote 1 trace(s) to {target}"
    assert json.loads(target.read_text())["trace_ids"] == [first]
    everything = tmp_path / "all.json"
    out, _ = run(shell, f"%halo export --all '{everything}'", capsys)
    assert out.strip() == f"wrote 2 trace(s) to {everything}"

    out, err = run(shell, f"%halo import {target}", capsys)
    assert out.strip() == (f"imported 1 trace(s) from {target}: 0 new span(s), "
                           "3 already stored")
    runtime.reset()
    halo_nb.configure(storage_path=tmp_path / "fresh", port=0)
    out, _ = run(shell, f"%halo import {everything}", capsys)
    assert "2 trace(s)" in out and "6 new span(s)" in out
    assert set(halo_nb.store().trace_ids()) == {first, second}

    _, err = run(shell, f"%halo import {tmp_path / 'missing.json'}", capsys)
    assert err.startswith("%halo import:") and len(err.strip().splitlines()) == 1
    broken = tmp_path / "broken.json"
    broken.write_text(everything.read_text()[:100])
    _, err = run(shell, f"%halo import {broken}", capsys)
    assert "cut off" in err and len(err.strip().splitlines()) == 1
    _, err = run(shell, f"%halo export ffffffff {tmp_path / 'x.json'}", capsys)
    assert err.strip().startswith("%halo export: no stored trace with id 'ffffffff'")


def test_compare(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    before = record_trace("agent", tool_result="3 results")
    after = record_trace("agent", tool_result="no results", extra_step=True)
    out, err = run(shell, f"%halo compare {before} {after[:10]}", capsys)
    assert err == ""
    assert f"A {before}" in out and f"B {after}" in out
    assert "search" in out and "retry" in out and "added" in out
    _, err = run(shell, f"%halo compare {before} 0000", capsys)
    assert err.strip().startswith("%halo compare: no stored trace with id '0000'")
    _, err = run(shell, f"%halo compare {before} {after[:3]}", capsys)
    assert err.strip() == (f"%halo compare: trace id prefix {after[:3]!r} is too short: "
                           "give at least 4 characters of the id")


def test_in_a_real_jupyter_kernel(tmp_path: Path) -> None:
    """%load_ext, %halo and the SDK across cells, as a notebook user runs them."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    cells = [
        "%load_ext halo_nb",
        f"import halo_nb\nhalo_nb.configure(storage_path={str(tmp_path / 'store')!r}, port=0)",
        "%halo serve --port 0",
        "t = halo_nb.start_trace('notebook-run', input='hi')",
        "with halo_nb.span(name='lookup', type='tool') as s:\n    s.set_output('found')",
        "halo_nb.annotate(rating=4)",
        "halo_nb.end_trace(t, output='bye')",
        "%halo list",
        "frame = halo_nb.spans()\n"
        "root = frame.filter(frame['parent_span_id'].is_null()).row(0, named=True)\n"
        "child = frame.filter(frame['name'] == 'lookup').row(0, named=True)\n"
        "assert child['parent_span_id'] == root['span_id'], (child, root)\n"
        "assert 'rating' in root['events'] and root['output'] == 'bye'\n"
        "print('ok', frame.height)",
        "%halo stop",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = ["".join(o.get("text", "") or str(o.get("data", {}).get("text/plain", ""))
                       for o in cell.outputs) for cell in notebook.cells]
    assert "listening on http://127.0.0.1:" in outputs[2]
    assert "notebook-run" in outputs[7]
    assert outputs[8].strip() == "ok 2"
    assert outputs[9].strip() == "halo collector stopped"
