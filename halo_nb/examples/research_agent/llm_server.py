"""The LLM endpoint the agent talks to: the bundled local model behind llama-cpp-python's
OpenAI-compatible server (a child process on a free loopback port), or the endpoint that
``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` name."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from halo_nb.localmodel import ModelUnavailable, bundled_gguf_path

from .protocol import Protocol

LOCAL_MODEL_NAME = "smollm2-135m-instruct"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible chat-completions endpoint and how to talk to it."""

    base_url: str
    api_key: str
    model: str
    protocol: Protocol


def endpoint_from_env() -> Endpoint | None:
    """The endpoint ``OPENAI_BASE_URL`` names (None when unset). ``OPENAI_MODEL`` picks the
    model (default gpt-4o-mini); ``HALO_AGENT_PROTOCOL=grammar`` suits llama.cpp servers
    whose models lack native tool calling (default: native ``tools``)."""
    base_url = os.environ.get("OPENAI_BASE_URL")
    if not base_url:
        return None
    protocol = os.environ.get("HALO_AGENT_PROTOCOL", "tools")
    if protocol not in ("grammar", "tools"):
        raise ValueError(f"HALO_AGENT_PROTOCOL: expected grammar or tools, got {protocol!r}")
    return Endpoint(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY") or "not-needed",
                    model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"), protocol=protocol)


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


class LocalModelServer:
    """``python -m llama_cpp.server`` serving the bundled SmolLM2-135M-Instruct GGUF on
    127.0.0.1. Use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(self, model_path: Path | None = None, *, n_ctx: int = 2048,
                 n_threads: int | None = None, seed: int = 42,
                 startup_timeout: float = 120.0) -> None:
        self.model_path = Path(model_path) if model_path else bundled_gguf_path()
        self.n_ctx = n_ctx
        # Half the cores: llama.cpp's threads spin while they wait, so using every core
        # slows it down badly as soon as anything else (the kernel, the collector) runs.
        self.n_threads = n_threads or max(1, (os.cpu_count() or 1) // 2)
        self.seed = seed
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the local model server is not running (call start())")
        return f"http://{LOOPBACK}:{self.port}/v1"

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(base_url=self.base_url, api_key="not-needed", model=LOCAL_MODEL_NAME,
                        protocol="grammar")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> LocalModelServer:
        if self.running:
            return self
        try:
            import llama_cpp.server  # noqa: F401 - fail here, with the fix, not in the child
        except ImportError as exc:
            raise ModelUnavailable(
                f"llama-cpp-python's server is not installed ({exc}); "
                'pip install "llama-cpp-python[server]"') from None
        for _attempt in range(3):
            self.port = free_loopback_port()
            if self._launch():
                return self
        raise ModelUnavailable(f"the local model server did not start:\n{self._log_tail()}")

    def _launch(self) -> bool:
        if self._log is not None:
            self._log.unlink(missing_ok=True)
        fd, log = tempfile.mkstemp(prefix="halo-llm-server-", suffix=".log")
        self._log = Path(log)
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path), "--model_alias", LOCAL_MODEL_NAME,
            "--host", LOOPBACK, "--port", str(self.port),
            "--n_ctx", str(self.n_ctx), "--n_threads", str(self.n_threads),
            "--n_threads_batch", str(self.n_threads), "--seed", str(self.seed),
            "--verbose", "false",
        ]
        with os.fdopen(fd, "wb") as out:
            self._process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            if self._ready():
                return True
            time.sleep(0.2)
        self.stop()
        raise ModelUnavailable(
            f"the local model server was not ready after {self.startup_timeout:.0f}s:\n"
            f"{self._log_tail()}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _log_tail(self, lines: int = 20) -> str:
        if self._log is None or not self._log.exists():
            return "(no log)"
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None
        self.port = None

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
