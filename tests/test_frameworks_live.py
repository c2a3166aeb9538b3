"""Live tier (pytest -m live): record each instrumentation library again, for real,
against the local mock model (tests/frameworks/recording.py) and check that the fresh
recording still gives what the committed corpus gives: healthy runs clean, each fault
caught. Needs scripts/install_frameworks.sh (.venv-frameworks and the Node project)."""

from __future__ import annotations

import pytest

from tests.frameworks.evaluate import evaluate
from tests.frameworks.recording import FRAMEWORKS_PYTHON, LIBRARIES, NODE_PROJECT, record, write
from tests.frameworks.scenarios import EXPECTED, HEALTHY

pytestmark = pytest.mark.live


def _installed(library) -> bool:
    if library.is_node:
        return (NODE_PROJECT / "node_modules" / "openai").is_dir()
    return FRAMEWORKS_PYTHON.exists()


@pytest.mark.parametrize("library", LIBRARIES, ids=[lib.name for lib in LIBRARIES])
def test_fresh_recording_matches_the_corpus(library, tmp_path):
    if not _installed(library):
        pytest.fail("frameworks not installed: run bash scripts/install_frameworks.sh")
    write(library, record(library), root=tmp_path)
    report = evaluate(library.name, root=tmp_path)
    assert report.healthy_traces == 5 * len(HEALTHY)
    assert report.healthy_findings == [] and report.healthy_clusters == 0
    assert report.missed == {} and set(report.caught) == set(EXPECTED)
