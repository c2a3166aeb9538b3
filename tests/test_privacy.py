"""Nothing leaves the machine: the whole quickstart flow (serve, run the sample agent on
the local model, analyse with the local model, export a snapshot) while every socket
connect, bind, send and name lookup of this process is recorded by an audit hook, and
every socket of the model-server child process is read from /proc."""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path

import pytest

import halo_nb

# The sample agent needs halo_nb[examples]; every test here runs it on the local model.
pytest.importorskip("openai", reason="the sample agent needs halo_nb[examples]")
pytestmark = pytest.mark.model

from halo_nb.examples.research_agent import LocalModelServer, run_batch  # noqa: E402

AUDITED = ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
           "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr")

_recording: list[tuple[str, tuple]] | None = None


def _audit(event: str, args: tuple) -> None:
    if _recording is not None and event in AUDITED:
        _recording.append((event, args))


sys.addaudithook(_audit)  # audit hooks cannot be removed: this one records only when asked


def is_loopback_host(host: object) -> bool:
    if host in (None, "", "localhost"):
        return True
    text = host.decode() if isinstance(host, bytes) else str(host)
    try:
        address = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return text == "localhost"
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def non_loopback(events: list[tuple[str, tuple]]) -> list[tuple[str, tuple]]:
    bad = []
    for event, args in events:
        if event == "socket.getaddrinfo":
            host = args[0]
        elif event in ("socket.gethostbyname", "socket.gethostbyaddr"):
            host = args[0]
        else:
            sock, address = args[0], args[1]
            if getattr(sock, "family", None) == socket.AF_UNIX or isinstance(address, (str, bytes)):
                continue  # a local socket file
            host = address[0]
        if not is_loopback_host(host):
            bad.append((event, args))
    return bad


def _hex_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(text)
    # /proc/net/tcp* print each 32-bit word of the address in host (little-endian) order.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def process_tcp_sockets(pid: int) -> list[tuple[str, str]]:
    """(local, remote) addresses of every TCP socket process ``pid`` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            if fields[9] in inodes:
                local, remote = (f.split(":")[0] for f in fields[1:3])
                found.append((str(_hex_address(local)), str(_hex_address(remote))))
    return found


@pytest.mark.model
def test_quickstart_flow_talks_only_to_loopback(halo_runtime, tmp_path: Path) -> None:
    global _recording
    events: list[tuple[str, tuple]] = []
    _recording = events
    try:
        collector_port = halo_nb.serve().port
        with LocalModelServer() as server:
            server_port = server.port
            report = run_batch(size=3, endpoint=server.endpoint)
            run_batch(size=1, endpoint=server.endpoint, variant="openinference")
            child_sockets = process_tcp_sockets(server._process.pid)
        result = halo_nb.analyze()  # the default settings: the local model phrases
        snapshot = halo_nb.export_snapshot(None, tmp_path / "quickstart.json")
        halo_nb.stop()
    finally:
        _recording = None

    assert len(report.runs) == 3
    assert result.trace_count == 4
    assert snapshot.stat().st_size > 0
    connects = [args[1] for event, args in events if event == "socket.connect"]
    ports = {address[1] for address in connects if isinstance(address, tuple)}
    assert {collector_port, server_port} <= ports, "the hook saw the agent's connections"
    assert non_loopback(events) == []
    # The model server (a child process) listens on, and talks to, loopback only.
    assert child_sockets, "the model server's listening socket"
    for local, remote in child_sockets:
        assert is_loopback_host(local), (local, remote)
        assert remote in ("0.0.0.0", "::") or is_loopback_host(remote), (local, remote)


def test_the_recorder_flags_a_non_loopback_address() -> None:
    """The audit hook sees what the flow test relies on: a numeric host needs no lookup
    and sends nothing, but still raises the audit event."""
    global _recording
    events: list[tuple[str, tuple]] = []
    _recording = events
    try:
        socket.getaddrinfo("192.0.2.7", 443, flags=socket.AI_NUMERICHOST)
        socket.getaddrinfo("127.0.0.1", 443, flags=socket.AI_NUMERICHOST)
    finally:
        _recording = None
    assert [args[0] for _, args in non_loopback(events)] == ["192.0.2.7"]
