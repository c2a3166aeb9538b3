"""Durability under real process deaths: ``halo serve`` killed with SIGKILL under load and
restarted, SIGTERM, scripts that exit normally, a disk that fills up (a real tmpfs).

Every span a 200 acknowledged must be on disk afterwards (with ``durability = "sync"``),
or lost only within the documented window (the default, "async")."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from durability_sender import span_ids
from otlp_factory import protobuf_body, span

from halo_nb.ingest.otlp import decode_protobuf
from halo_nb.storage.errors import StoreWriteFailed
from halo_nb.storage.store import SpanStore

pytestmark = pytest.mark.fault

SENDER = Path(__file__).parent / "durability_sender.py"
PER_REQUEST = 100
# The README's "Durability" section: with durability = "async" a kill -9 loses at most
# the spans acknowledged in the last flush interval (0.25 s) plus the part write then in
# progress; measured up to ~0.5 s on a loaded 2-core machine. The test allows 1.5 s, as
# other jobs share the machine.
ASYNC_LOSS_WINDOW_S = 1.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HALO_", "OTEL_"))}
    env.update(extra)
    return env


def start_serve(storage: Path, port: int, durability: str, cwd: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "halo_nb.cli", "serve", "--storage", str(storage),
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd,
        env=clean_env(HALO_DURABILITY=durability))
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"halo serve exited with {proc.wait()}")
        if "listening on" in line:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain
            return proc
    proc.kill()
    raise AssertionError("halo serve did not start within 60 s")


class Sender:
    """The load generator process and the acknowledgements it reports."""

    def __init__(self, port: int, connections: int = 3) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SENDER), f"http://127.0.0.1:{port}/v1/traces",
             str(PER_REQUEST), str(connections)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=clean_env())
        self.acked: dict[int, float] = {}
        self.done = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            fields = line.split()
            if fields[0] == "ack":
                self.acked[int(fields[1])] = float(fields[2])
            elif fields[0] == "done":
                self.done.set()

    def wait_for_acks(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count:
            assert time.monotonic() < deadline, f"only {len(self.acked)} acks"
            time.sleep(0.02)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.done.wait(60), "sender did not stop"
        self.proc.wait(10)


def stored_span_ids(storage: Path) -> set[str]:
    store = SpanStore(storage)
    try:
        return set(store.spans()["span_id"].to_list())
    finally:
        store.close()


def missing_requests(acked: dict[int, float], stored: set[str]) -> dict[int, float]:
    return {request: at for request, at in acked.items()
            if not set(span_ids(request, PER_REQUEST)) <= stored}


def run_kill_cycles(tmp_path: Path, durability: str, kills: int) -> tuple[
        dict[int, float], list[float], set[str]]:
    storage = tmp_path / "data"
    port = free_port()
    rng = random.Random()
    server = start_serve(storage, port, durability, tmp_path)
    sender = Sender(port)
    kill_times: list[float] = []
    try:
        for _ in range(kills):
            sender.wait_for_acks(len(sender.acked) + 5)
            time.sleep(rng.uniform(0.2, 1.0))
            kill_times.append(time.monotonic())
            server.send_signal(signal.SIGKILL)
            server.wait(10)
            server = start_serve(storage, port, durability, tmp_path)
        sender.wait_for_acks(len(sender.acked) + 5)
        sender.stop()
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
    finally:
        if server.poll() is None:
            server.kill()
        if sender.proc.poll() is None:
            sender.proc.kill()
    return sender.acked, kill_times, stored_span_ids(storage)


def test_sync_durability_loses_no_acknowledged_span_across_kill_9(tmp_path: Path) -> None:
    acked, kill_times, stored = run_kill_cycles(tmp_path, "sync", kills=3)
    assert len(acked) >= 40, "too little load to show anything"
    assert missing_requests(acked, stored) == {}
    # Requests in flight at a kill may be stored without their 200; never partially.
    for request in range(max(acked) + 1):
        ids = set(span_ids(request, PER_REQUEST))
        assert ids <= stored or not ids & stored, f"request {request} stored partially"


def test_async_durability_loses_only_the_documented_window_across_kill_9(
        tmp_path: Path) -> None:
    acked, kill_times, stored = run_kill_cycles(tmp_path, "async", kills=3)
    assert len(acked) >= 40, "too little load to show anything"
    lost = missing_requests(acked, stored)
    ages = []
    for request, acked_at in lost.items():
        # The sender stamps a 200 after reading it: one read just as the collector died
        # may carry a time a little after the kill.
        kill_at = min((t for t in kill_times if t >= acked_at - 0.1), default=None)
        assert kill_at is not None, f"request {request} lost without a kill after its 200"
        ages.append(max(0.0, kill_at - acked_at))
    print(f"async: {len(lost)} of {len(acked)} acknowledged requests lost over "
          f"{len(kill_times)} kills; oldest acknowledged {max(ages, default=0):.3f} s "
          "before its kill")
    assert max(ages, default=0.0) <= ASYNC_LOSS_WINDOW_S


def test_sigterm_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    storage = tmp_path / "data"
    port = free_port()
    server = start_serve(storage, port, "async", tmp_path)
    sender = Sender(port)
    try:
        sender.wait_for_acks(30)
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
        sender.stop()
    finally:
        if server.poll() is None:
            server.kill()
        if sender.proc.poll() is None:
            sender.proc.kill()
    assert missing_requests(sender.acked, stored_span_ids(storage)) == {}


def run_script(code: str, cwd: Path, storage: Path, **kwargs) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd,
                            env=clean_env(HALO_STORAGE_PATH=str(storage)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


SDK_SCRIPT = """
    import sys
    from halo_nb import end_trace, span, start_trace

    for i in range(20):
        t = start_trace("agent", input=f"question {i}")
        with span(t, name="chat", type="llm", model="m") as s:
            s.set_output("answer")
        with span(t, name="search", type="tool"):
            pass
        end_trace(t, output="done")
    # A trace still open at exit: its finished spans count too.
    open_trace = start_trace("agent", input="unfinished")
    with span(open_trace, name="chat", type="llm"):
        pass
    print("recorded", flush=True)
    ENDING
"""


def test_a_script_using_the_sdk_loses_nothing_at_normal_exit(tmp_path: Path) -> None:
    storage = tmp_path / "data"
    proc = run_script(SDK_SCRIPT.replace("ENDING", "sys.exit(0)"), tmp_path, storage)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    spans = SpanStore(storage)
    assert len(spans) == 20 * 3 + 1, err
    assert spans.traces().height == 21
    spans.close()


def test_a_script_using_the_sdk_loses_nothing_on_sigterm(tmp_path: Path) -> None:
    storage = tmp_path / "data"
    proc = run_script(SDK_SCRIPT.replace("ENDING", "import time; time.sleep(60)"), tmp_path,
                      storage)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "recorded"
    proc.send_signal(signal.SIGTERM)
    # Still ends as killed by SIGTERM (what supervisors and Jupyter expect), after writing.
    assert proc.wait(30) == -signal.SIGTERM
    spans = SpanStore(storage)
    assert len(spans) == 20 * 3 + 1, proc.stderr.read() if proc.stderr else ""
    spans.close()


def test_a_script_importing_a_snapshot_loses_nothing_at_normal_exit(tmp_path: Path) -> None:
    source = SpanStore(None)
    source.append(decode_protobuf(protobuf_body(
        [span(f"s{i}", trace_id=f"{7:032x}") for i in range(30)])).frame)
    from halo_nb.interchange.snapshot import export_snapshot

    snapshot = export_snapshot(source, source.trace_ids(), tmp_path / "shared.json")
    source.close()
    storage = tmp_path / "data"
    proc = run_script(f"""
        import halo_nb
        result = halo_nb.import_snapshot({str(snapshot)!r})
        print(result.spans_added, flush=True)
    """, tmp_path, storage)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.strip() == "30", err
    reopened = SpanStore(storage, retention_days=30)
    assert len(reopened) == 30
    reopened.close()


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MiB tmpfs (skipped where mounting is not allowed); grown by calling the
    yielded function with a size."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    def grow(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True)

    try:
        yield mount, grow
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def batch(count: int):
    return decode_protobuf(protobuf_body(
        [span("step", attrs={"input.value": os.urandom(1000).hex()}) for _ in range(count)]
    )).span_batch()


def test_a_full_disk_loses_nothing_once_space_returns_sync(small_disk) -> None:
    mount, grow = small_disk
    store = SpanStore(mount / "data", durability="sync")
    acknowledged = 0
    refused = 0
    for _ in range(60):  # ~3 KB a span: the 3 MiB disk fills within a few hundred spans
        try:
            acknowledged += store.append_batches([batch(20)])
        except StoreWriteFailed as exc:
            refused += 1
            assert exc.retry_after_s > 0
            time.sleep(0.05)
    assert acknowledged and refused, (acknowledged, refused)
    held = len(store)  # refused spans stay in memory, queryable
    grow("64m")
    store.close()
    reopened = SpanStore(mount / "data")
    assert len(reopened) == held >= acknowledged
    reopened.close()


def test_a_full_disk_loses_nothing_once_space_returns_async(small_disk) -> None:
    mount, grow = small_disk
    store = SpanStore(mount / "data")
    for _ in range(60):
        store.append_batches([batch(20)])
    with pytest.raises(OSError):
        store.flush()  # the disk is full: the write fails, the spans stay in memory
    assert len(store) == store.spans().height == 1200
    grow("64m")
    store.close()
    reopened = SpanStore(mount / "data")
    assert len(reopened) == 1200
    assert reopened.spans().select(pl.col("span_id").n_unique()).item() == 1200
    reopened.close()
