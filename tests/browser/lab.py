"""A real JupyterLab server and a notebook driven in Debian's headless Chromium.

Used by the browser tests (one server per session) and by benchmarks/widgets.py. The
server runs from a temporary root folder on a free loopback port; its kernels inherit
HALO_* settings that keep the collector on a free port and the store in memory, so
nothing touches 127.0.0.1:4281 or the user's data.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Lab:
    url: str
    token: str
    root: Path

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Authorization": f"token {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else {}

    def new_notebook(self, name: str) -> str:
        """Create an empty notebook; returns the URL that opens it."""
        notebook = {"cells": [{"cell_type": "code", "source": "", "metadata": {},
                               "outputs": [], "execution_count": None}],
                    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                "language": "python"}},
                    "nbformat": 4, "nbformat_minor": 5}
        self.api("PUT", f"/api/contents/{name}", {"type": "notebook", "content": notebook})
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"


def _lab_settings(folder: Path) -> None:
    """No news pop-up, no update check: nothing covers the notebook in screenshots."""
    target = folder / "@jupyterlab" / "apputils-extension"
    target.mkdir(parents=True, exist_ok=True)
    (target / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))


@contextlib.contextmanager
def running_lab(root: Path, state: Path) -> Iterator[Lab]:
    """Start ``jupyter lab`` serving ``root`` (logs and settings under ``state``)."""
    _lab_settings(state / "settings")
    port = free_port()
    token = secrets.token_hex(16)
    env = dict(os.environ, HALO_PORT="0", HALO_PERSIST="false",
               HALO_STORAGE_PATH=str(state / "halo-data"), JUPYTER_RUNTIME_DIR=str(state / "rt"),
               PYTHONPATH=os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
               "--ip=127.0.0.1", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               "--allow-root", "--LabApp.extension_manager=readonly",
               f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={state / 'settings'}",
               f"--LabApp.workspaces_dir={state / 'workspaces'}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log_path = state / "lab.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            lab = Lab(f"http://127.0.0.1:{port}", token, root)
            deadline = time.monotonic() + 90
            while True:
                try:
                    lab.api("GET", "/api/status")
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        output = log_path.read_text(errors="replace")[-3000:]
                        raise RuntimeError(f"JupyterLab did not start:\n{output}") from None
                    time.sleep(0.3)
            yield lab
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def screenshot(target: object, name: str) -> Path:
    """Save a PNG of a page or locator under test-artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    target.screenshot(path=str(path))
    return path


class Notebook:
    """Drives one open notebook: append a cell, run it, return the cell."""

    def __init__(self, page: object) -> None:
        self.page = page

    def open(self, url: str) -> None:
        """Load the notebook, wait for an idle kernel, fold the file browser away."""
        from playwright.sync_api import expect

        self.page.goto(url)
        self.page.wait_for_selector(".jp-Notebook .jp-CodeCell .cm-content", timeout=60_000)
        expect(self.page.locator(".jp-StatusBar-TextItem", has_text="Idle").first).to_be_visible(
            timeout=60_000)
        self.page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()

    def type(self, code: str) -> object:
        """Put ``code`` in the last (empty) cell without running it; returns the cell."""
        from playwright.sync_api import expect

        cells = self.page.locator(".jp-Notebook .jp-CodeCell")
        cell = cells.nth(cells.count() - 1)
        editor = cell.locator(".cm-content")
        editor.click()
        self.page.keyboard.insert_text(code)
        expect(editor).to_contain_text(code.splitlines()[0])
        return cell

    def run(self, code: str, timeout_ms: int = 60_000) -> object:
        from playwright.sync_api import expect

        cell = self.type(code)
        self.page.keyboard.press("Shift+Enter")
        expect(cell.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]"),
                                                             timeout=timeout_ms)
        return cell

    def text(self, cell: object) -> str:
        return cell.locator(".jp-OutputArea").inner_text()
