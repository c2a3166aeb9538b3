"""The two notebooks run top to bottom headless (nbclient) on the defaults, offline, and
show what they promise: the traces, the retry-loop cluster, and that the fix shrinks it."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def execute(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    for key in list(os.environ):
        if key.startswith(("HALO_", "OPENAI_", "OTEL_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HALO_PORT", "0")  # never the user's 4281 in a test
    monkeypatch.setenv("HALO_STORAGE_PATH", str(tmp_path / "store"))
    # No PYTHONPATH: the notebooks run from a folder outside the checkout on what the
    # installed halo_nb ships (the sample agent is halo_nb.examples).
    monkeypatch.delenv("PYTHONPATH", raising=False)
    shutil.copy(NOTEBOOKS / name, tmp_path / name)
    book = nbformat.read(tmp_path / name, as_version=4)
    NotebookClient(book, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    return book


def text_of(book: nbformat.NotebookNode, tag: str) -> str:
    cells = [c for c in book.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"one cell tagged {tag!r}"
    return "".join(out.get("text", "") for out in cells[0].outputs if out.output_type == "stream")


def test_notebooks_are_committed_without_outputs() -> None:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        book = nbformat.read(path, as_version=4)
        nbformat.validate(book)
        for cell in book.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.model
def test_quickstart_runs_and_finds_the_retry_loop(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    book = execute("quickstart.ipynb", tmp_path, monkeypatch)
    assert text_of(book, "batch").startswith("16 traces (halo, baseline")
    assert re.match(r"16 traces, \d+ spans", text_of(book, "trace-count"))
    retry = re.search(r"retry loop[^:]*: (\d+) of 16 traces", text_of(book, "retry-cluster"))
    assert retry and int(retry.group(1)) >= 2
    assert "Suggested fix:" in text_of(book, "retry-cluster")
    assert (tmp_path / "snapshots" / "retry-loop.json").stat().st_size > 0


@pytest.mark.model
def test_failure_clusters_shows_the_fix_shrinking_the_cluster(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    book = execute("failure_clusters.ipynb", tmp_path, monkeypatch)
    before = re.search(r"retry-loop cluster in (\d+) of 16 traces", text_of(book, "before"))
    assert before and int(before.group(1)) >= 2
    after = re.search(r"retry-loop cluster: (\d+) traces before, (\d+) after",
                      text_of(book, "after"))
    assert after and int(after.group(1)) == int(before.group(1))
    assert int(after.group(2)) < int(after.group(1))
    check = text_of(book, "check")
    assert check.startswith("halo check: 1 regression")
    assert "retry_loop" in check
