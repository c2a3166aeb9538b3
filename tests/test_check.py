"""``halo check``: the CI gate over failure clusters, on snapshots of real runs of the
sample research agent (baseline, and with the reformulate fix) on the local model."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from halo_nb.cli import main

EXIT_REGRESSION = 3


def run_check(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["check", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def parse_junit(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases) > 0
    assert int(suite.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
    return suite


@pytest.mark.model
def test_baseline_against_itself_passes(agent_batches, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = agent_batches["baseline"].snapshot
    junit, summary = tmp_path / "check.xml", tmp_path / "check.md"
    code, out, err = run_check(capsys, "--baseline", snapshot, "--current", snapshot,
                               "--junit", junit, "--summary", summary)
    assert code == 0, out + err
    assert out.startswith("halo check: no regression")
    suite = parse_junit(junit)
    assert suite.get("failures") == "0"
    names = [case.get("name") for case in suite.findall("testcase")]
    assert any("retry_loop" in name for name in names)
    text = summary.read_text()
    assert text.startswith("## ✅ halo check: no regression")
    assert "| unchanged |" in text


@pytest.mark.model
def test_reverting_the_fix_is_a_named_regression(agent_batches, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    junit, summary = tmp_path / "check.xml", tmp_path / "check.md"
    code, out, _ = run_check(capsys, "--baseline", agent_batches["fixed"].snapshot,
                             "--current", agent_batches["baseline"].snapshot,
                             "--junit", junit, "--summary", summary)
    assert code == EXIT_REGRESSION
    regressions = [line for line in out.splitlines() if "REGRESSION" in line]
    assert regressions and all("retry_loop" in line for line in regressions)
    assert "retry loop" in regressions[0]
    suite = parse_junit(junit)
    failed = [case for case in suite.findall("testcase") if case.find("failure") is not None]
    assert [case.get("classname") for case in failed] == ["halo.check.retry_loop"]
    failure = failed[0].find("failure")
    assert failure.get("type") in ("new", "grown")
    assert "suggested fix:" in failure.text
    text = summary.read_text()
    assert text.startswith("## ❌ halo check: 1 regression")
    assert "**Suggested fix:**" in text


@pytest.mark.model
def test_applying_the_fix_passes_and_shrinks_the_cluster(
        agent_batches, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    baseline_dir = tmp_path / "baseline"
    baseline_dir.mkdir()
    shutil.copy(agent_batches["baseline"].snapshot, baseline_dir)
    code, out, err = run_check(capsys, "--baseline", baseline_dir,
                               "--current", agent_batches["fixed"].snapshot)
    assert code == 0, out + err
    retry = [line for line in out.splitlines() if "retry loop" in line]
    assert retry and retry[0].split()[0] in ("gone", "shrunk")


def test_missing_snapshot_is_a_data_error(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_check(capsys, "--baseline", tmp_path / "nope.json",
                             "--current", tmp_path / "nope.json")
    assert code == 2
    assert "nope.json" in err


def test_folder_without_snapshots_is_a_data_error(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_check(capsys, "--baseline", tmp_path, "--current", tmp_path)
    assert code == 2
    assert "no snapshot files" in err


def test_damaged_snapshot_is_a_data_error(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "halo_nb.snapshot", "version": 1, "trace_ids": [')
    code, _, err = run_check(capsys, "--baseline", bad, "--current", bad)
    assert code == 2
    assert "bad.json" in err


def test_growth_outside_0_to_1_is_a_usage_error(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_check(capsys, "--baseline", tmp_path, "--current", tmp_path,
                             "--max-growth", "5")
    assert code == 1
    assert "--max-growth" in err


@pytest.mark.model
def test_too_few_traces_is_a_data_error(agent_batches, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    snapshot = agent_batches["fixed"].snapshot
    code, _, err = run_check(capsys, "--baseline", snapshot, "--current", snapshot,
                             "--min-traces", "500")
    assert code == 2
    assert "needs at least 500" in err
