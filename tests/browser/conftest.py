"""Fixtures for the browser tests: one JupyterLab server, one Chromium and one notebook
(its kernel running the collector with the corpus sent to it), shared by the browser
package and stopped after it (Playwright's sync API holds an event loop while open)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from .lab import CHROMIUM, CHROMIUM_ARGS, Lab, Notebook, running_lab, screenshot
from .session import CORPUS, post_otlp


@pytest.fixture(scope="package")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with running_lab(tmp_path_factory.mktemp("lab-root"),
                     tmp_path_factory.mktemp("lab-state")) as lab:
        yield lab


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def page(lab: Lab, browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    Notebook(page).open(lab.new_notebook("views.ipynb"))
    page.errors = errors
    yield page
    context.close()


@pytest.fixture(scope="package")
def notebook(page: object) -> Notebook:
    return Notebook(page)


@pytest.fixture(scope="package")
def collector_port(notebook: Notebook) -> int:
    cell = notebook.run(
        "import json, halo_nb\n"
        "collector = halo_nb.serve()\n"
        "print(json.dumps({'port': collector.port}))")
    port = json.loads(re.search(r"\{.*\}", notebook.text(cell)).group(0))["port"]
    post_otlp(port, CORPUS)
    return port


@pytest.fixture(scope="package")
def analysed(notebook: Notebook, collector_port: int) -> object:
    return notebook.run(
        "result = halo_nb.analyze()\n"
        "print(result.clusters.height, 'clusters;', result.hypotheses.height, 'hypotheses')",
        timeout_ms=180_000)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """On a failing browser test, keep a screenshot of the page for the post-mortem."""
    report = yield
    page = item.funcargs.get("page") if hasattr(item, "funcargs") else None
    if report.when == "call" and report.failed and page is not None:
        try:
            screenshot(page, f"FAILED-{item.name}")
        except Exception:  # the page may be gone; the failure itself is what matters
            pass
    return report
