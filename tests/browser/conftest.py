"""Fixtures for the browser tests: one JupyterLab server and one Chromium, shared by the
browser package and stopped after it (Playwright's sync API holds an event loop while open)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .lab import CHROMIUM, CHROMIUM_ARGS, Lab, running_lab, screenshot


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
