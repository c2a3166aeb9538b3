"""The OTLP/HTTP trace receiver: a daemon thread in the current process (the kernel).

Routing, content types, gzip, size limits and OTLP status codes live here; turning a
body into spans is ``otlp``'s job and keeping them is ``store``'s.

Answers, per the OTLP/HTTP specification:

- 200 with an ``ExportTraceServiceResponse`` in the request's encoding; when spans were
  rejected (e.g. bad ids) its ``partial_success`` carries ``rejected_spans`` and an
  ``error_message`` naming each problem.
- 400 for a body that is not a trace request, 411 without a length, 413 for a body over
  ``max_body_bytes`` after decompression (decompressed in bounded steps, so a gzip bomb
  costs at most the limit), 415 for other content types or encodings, 404 for other
  paths, 405 for other methods on ``/v1/traces``. Error bodies are a ``google.rpc.Status``
  in the request's encoding.

Hostile or broken HTTP is refused before anything is buffered past the limit:

- 408 when a request (line, headers and body) has not arrived ``request_timeout_seconds``
  after its first byte: a trickling client or a Content-Length larger than the body
  holds a thread that long, not forever (``_DeadlineReader``).
- 400 for a malformed or negative chunk size, a chunk not followed by CRLF, more than one
  Content-Length or one that is not digits, Content-Length beside Transfer-Encoding
  (the two framings of request smuggling), and a missing or repeated Host; 501 for a
  Transfer-Encoding other than chunked. Chunk framing may add at most ``max_body_bytes``
  to the body, so tiny chunks cannot stretch a request without bound either.
- 403 for a Host header that is not a loopback name (localhost, 127.0.0.1, [::1]), the
  configured ``host``, or the address the connection came in on: a web page that rebinds
  its DNS name to 127.0.0.1 still sends its own name as Host, so it cannot post spans.

Memory and threads stay bounded whoever connects:

- at most ``max_connections`` connections are served at once (a thread each, never
  more). A new one past it makes room by closing an idle keep-alive connection (the
  oldest idle one; HTTP lets a server close an idle connection, and exporters
  reconnect) and waits for its thread to end; when every connection is busy, the new one
  is answered 503 with ``Retry-After`` and closed.
- each request's body may take its first ``BODY_ALLOWANCE_BYTES`` (1 MiB, more than an
  exporter's usual batch) freely; past that, at most ``max_buffered_bytes`` of bodies
  (raw and decompressed) are held at once across connections, and a request whose body
  would pass it is answered 503 with ``Retry-After`` before the rest is read. So N slow
  uploads of large bodies cost the budget, not N times ``max_body_bytes``, and they
  cannot starve ordinary exporters' batches. In all, bodies hold at most
  ``max_connections`` x 1 MiB + ``max_buffered_bytes``. OTLP exporters retry 503 after
  the delay it names.

A bad request never stops the server and never touches spans already stored.

Protobuf bodies are decoded natively (``otlp.decode_native``: C that runs without the
GIL) in the request's own thread, so concurrent exporters decode on every core while the
kernel's main thread stays free. JSON bodies, and protobuf bodies the native decoder
leaves to the Python reference (malformed ones, or ones holding a span to reject), are
decoded in Python (about 25 us a span, holding the GIL), so large ones go to a few worker
processes: the kernel writes the body
to a worker's stdin, the worker answers with the frame serialized, and the kernel only
reads bodies, appends frames and answers. Workers are plain ``python -c`` children (not
multiprocessing, which would re-import the user's ``__main__``); they exit when their
stdin closes, so they die with the kernel. Small bodies (under ``POOL_MIN_BYTES``) are
decoded in the handler thread, where the round trip would cost more than it saves. The
workers start with the first large body that needs Python (or ``start_decoders()``); if one dies,
that request is decoded in-thread and a new worker replaces it. Errors are the same
either way: a worker reports ``OTLPDecodeError``'s message or the partial-success details.
"""

from __future__ import annotations

import errno
import io
import ipaddress
import json
import logging
import os
import pickle
import queue
import re
import select
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import polars as pl
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from ..config import Settings
from ..group_commit import GroupCommit
from ..storage.errors import StoreUnavailable
from ..storage.store import SpanStore
from .otlp import (
    DecodeResult,
    OTLPDecodeError,
    decode_json,
    decode_native,
    decode_protobuf_reference,
)
from .span_batch import SpanBatch

log = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_CONTENT_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}
# gRPC status codes carried in google.rpc.Status.code.
_GRPC_CODE = {400: 3, 403: 7, 408: 4, 411: 3, 413: 8, 415: 3, 404: 5, 405: 12, 500: 13,
              501: 12, 503: 14}
_READ_STEP = 1 << 20
# Longest chunk-size line (with extensions) and most trailer lines a chunked body may have.
_MAX_CHUNK_LINE = 4096
_MAX_TRAILERS = 64
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_DIGITS = re.compile(r"[0-9]{1,19}")
_LOOPBACK_NAMES = frozenset(("localhost", "127.0.0.1", "::1"))
# Pending connections the listening socket queues (Linux caps it at net.core.somaxconn).
LISTEN_BACKLOG = 1024
# JSON bodies at least this large are decoded in a worker process.
POOL_MIN_BYTES = 64 * 1024
DEFAULT_DECODE_WORKERS = max(1, min(4, os.cpu_count() or 1))
# What a client refused for want of a connection slot or of body budget waits to retry.
BUSY_RETRY_AFTER_S = 1
# The part of each request's body that does not count against max_buffered_bytes.
BODY_ALLOWANCE_BYTES = 1 << 20
# Refused connections waiting for their 503 to be sent; past it one is closed unanswered.
_REFUSALS_QUEUED = 64
# A connection counts as idle (closable for room) once it has waited this long for a
# request: a client that just connected, or just got its answer, sends straight away.
IDLE_GRACE_S = 0.5
# How long a new connection waits for the thread of the idle one closed for it to end.
CLOSED_THREAD_WAIT_S = 0.5


class CollectorError(RuntimeError):
    """The collector cannot start."""


@dataclass
class CollectorCounts:
    requests_accepted: int = 0
    requests_rejected: int = 0
    spans_accepted: int = 0
    spans_rejected: int = 0


class _Reject(Exception):
    def __init__(self, status: int, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s


class _BodyBudget:
    """The bytes of request bodies held at once, across every connection."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        """Hold ``size`` more bytes if the budget allows it."""
        with self._lock:
            if self._held + size > self.limit:
                return False
            self._held += size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self._held -= size

    @property
    def held(self) -> int:
        return self._held


class Collector:
    """An OTLP/HTTP receiver feeding ``store``. ``port=0`` binds a free port."""

    def __init__(self, store: SpanStore, host: str = "127.0.0.1", port: int = 4281,
                 max_body_bytes: int = 64 * 1024 * 1024,
                 decode_workers: int = DEFAULT_DECODE_WORKERS, *,
                 request_timeout_seconds: float = 10.0,
                 max_attributes_per_span: int | None = 1000,
                 max_buffered_bytes: int | None = None, max_connections: int = 256,
                 body_allowance_bytes: int = BODY_ALLOWANCE_BYTES) -> None:
        self.store = store
        self.host = host
        self.requested_port = port
        self.max_body_bytes = max_body_bytes
        # None: room for four bodies of the largest size.
        self.body_budget = _BodyBudget(max_buffered_bytes or 4 * max_body_bytes)
        self.body_allowance_bytes = body_allowance_bytes
        self.max_connections = max_connections
        self.decode_workers = decode_workers
        self.request_timeout_seconds = request_timeout_seconds
        self.max_attributes_per_span = max_attributes_per_span
        # Concurrent requests' spans are appended together: the store's lock is taken once
        # for them and a duplicate check that needs Polars runs once.
        self._appender: GroupCommit[SpanBatch] = GroupCommit(store.append_batches)
        self._decoders: _Decoders | None = None
        self._decoders_lock = threading.Lock()
        self._counts = CollectorCounts()
        self._counts_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, store: SpanStore, settings: Settings) -> Collector:
        """A collector with every limit ``settings`` sets."""
        return cls(store, host=settings.host, port=settings.port,
                   max_body_bytes=settings.max_body_bytes,
                   request_timeout_seconds=settings.request_timeout_seconds,
                   max_attributes_per_span=settings.max_attributes_per_span,
                   max_buffered_bytes=settings.max_buffered_bytes or None,
                   max_connections=settings.max_connections)

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> Collector:
        """Bind and serve in a daemon thread. Raises CollectorError naming the port when
        it is taken."""
        if self.running:
            return self
        try:
            server = _Server((self.host, self.requested_port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CollectorError(
                    f"port {self.requested_port} on {self.host} is already in use; stop what "
                    f"is listening there or choose another port (e.g. serve(port=0))") from None
            raise CollectorError(
                f"cannot listen on {self.host}:{self.requested_port}: {exc}") from None
        server.collector = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"halo-collector-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close open connections. Stored spans stay in the store."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None
        with self._decoders_lock:
            decoders, self._decoders = self._decoders, None
        if decoders is not None:
            decoders.close()

    def start_decoders(self) -> None:
        """Start the decoding worker processes now rather than with the first large JSON body
        (each imports polars and protobuf, which takes about a second) and wait until they
        are ready."""
        decoders = self._decoder_pool()
        if decoders is not None:
            decoders.wait_ready()

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        if self._server is not None:
            return self._server.server_address[1]
        return self.requested_port

    @property
    def url(self) -> str:
        """The base URL an exporter's endpoint points at (``/v1/traces`` is appended)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def traces_url(self) -> str:
        return self.url + TRACES_PATH

    @property
    def counts(self) -> CollectorCounts:
        """A copy of the request and span counters."""
        with self._counts_lock:
            return CollectorCounts(**asdict(self._counts))

    @property
    def stats(self) -> dict[str, int]:
        return asdict(self.counts)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        c = self.counts
        return (f"<Collector {state} {self.url} requests ok/rejected "
                f"{c.requests_accepted}/{c.requests_rejected}, spans ok/rejected "
                f"{c.spans_accepted}/{c.spans_rejected}>")

    # ---- request handling (called from handler threads) ----------------------------------

    def _count(self, *, accepted: bool, spans_ok: int = 0, spans_bad: int = 0) -> None:
        with self._counts_lock:
            c = self._counts
            if accepted:
                c.requests_accepted += 1
            else:
                c.requests_rejected += 1
            c.spans_accepted += spans_ok
            c.spans_rejected += spans_bad

    def ingest(self, body: bytes, content_type: str) -> DecodeResult:
        """Decode a request body and store its spans: protobuf natively in this thread;
        what needs Python (JSON, or protobuf the native decoder leaves to the reference)
        in a worker process when the body is large, so it never holds the kernel's GIL
        for long, whoever sent it."""
        cap = self.max_attributes_per_span
        result = decode_native(body, max_attributes=cap) if content_type == PROTOBUF else None
        if result is None and len(body) >= POOL_MIN_BYTES:
            decoders = self._decoder_pool()
            if decoders is not None:
                try:
                    result = decoders.decode(body, content_type)
                except _WorkerDied as exc:
                    log.warning("halo_nb collector: %s; decoding in-thread", exc)
        if result is None:
            result = _decode(body, content_type, cap)
        self._appender.submit(result.span_batch())
        return result

    def _decoder_pool(self) -> _Decoders | None:
        if self.decode_workers < 1:
            return None
        with self._decoders_lock:
            if self._decoders is None:
                self._decoders = _Decoders(self.decode_workers, self.max_attributes_per_span)
            return self._decoders


def _decode(body: bytes, content_type: str, max_attributes: int | None) -> DecodeResult:
    """The Python decoders (protobuf reaches here once the native decoder declined it)."""
    decode = decode_protobuf_reference if content_type == PROTOBUF else decode_json
    return decode(body, max_attributes=max_attributes)


class _WorkerDied(RuntimeError):
    pass


_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_WORKER_CODE = "from halo_nb.ingest.server import decoder_main; decoder_main({})"


class _Decoders:
    """Decoding worker processes; a request borrows an idle one (waiting when all are
    busy, which is the back-pressure on exporters)."""

    def __init__(self, count: int, max_attributes: int | None) -> None:
        self._code = _WORKER_CODE.format(int(max_attributes or 0))
        self._idle: queue.Queue[subprocess.Popen[bytes]] = queue.Queue()
        self._workers: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(count):
            self._idle.put(self._spawn())

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        # A worker decodes one request at a time: Polars' thread pool would only spin
        # on the cores the other workers and the kernel need.
        env["POLARS_MAX_THREADS"] = "1"
        worker = subprocess.Popen([sys.executable, "-c", self._code], env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        with self._lock:
            self._workers.add(worker)
        return worker

    def wait_ready(self) -> None:
        """Round-trip an empty request through every worker."""
        workers = [self._idle.get() for _ in range(len(self._workers))]
        try:
            for worker in workers:
                _exchange(worker, b"")
        finally:
            for worker in workers:
                self._idle.put(worker)

    def decode(self, body: bytes, content_type: str) -> DecodeResult:
        worker = self._idle.get()
        try:
            reply = _exchange(worker, (b"j" if content_type == JSON else b"p") + body)
        except (OSError, ValueError, EOFError, pickle.UnpicklingError) as exc:
            self._retire(worker)
            raise _WorkerDied(f"decoding worker {worker.pid} failed ({exc!r})") from None
        self._idle.put(worker)
        if reply[0] == "decode_error":
            raise OTLPDecodeError(reply[1])
        if reply[0] == "error":
            raise RuntimeError(reply[1])
        _, data, rejected, errors = reply
        return DecodeResult(pl.DataFrame.deserialize(io.BytesIO(data)), rejected, errors)

    def _retire(self, worker: subprocess.Popen[bytes]) -> None:
        worker.kill()
        worker.wait()
        with self._lock:
            self._workers.discard(worker)
            closed = self._closed
        if not closed:
            self._idle.put(self._spawn())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        for worker in workers:
            if worker.stdin is not None:
                worker.stdin.close()  # the worker exits at end of input
        for worker in workers:
            try:
                worker.wait(timeout=5)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def _exchange(worker: subprocess.Popen[bytes], payload: bytes) -> Any:
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(len(payload).to_bytes(8, "little") + payload)
    worker.stdin.flush()
    return pickle.loads(_read_message(worker.stdout))


def _read_message(stream: Any) -> bytes:
    header = stream.read(8)
    if len(header) != 8:
        raise EOFError("worker closed its output")
    size = int.from_bytes(header, "little")
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("worker output ended early")
    return data


def decoder_main(max_attributes: int = 0) -> None:
    """A decoding worker: reads length-prefixed requests (b"p" or b"j" then the body) from
    stdin until it closes; answers each with a pickled reply on the original stdout."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, never into the replies
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer
    while True:
        try:
            payload = _read_message(requests)
        except EOFError:
            return
        if not payload:
            reply: tuple[Any, ...] = ("ready",)
        else:
            content_type = JSON if payload[:1] == b"j" else PROTOBUF
            try:
                result = _decode(payload[1:], content_type, max_attributes or None)
                # Polars' own binary form: same Polars on both sides, cheapest to read back.
                reply = ("ok", result.frame.serialize(), result.rejected, result.errors)
            except OTLPDecodeError as exc:
                reply = ("decode_error", str(exc))
            except Exception as exc:  # reported to the kernel as a 500, worker lives on
                reply = ("error", f"{type(exc).__name__}: {exc}")
        data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        replies.write(len(data).to_bytes(8, "little") + data)
        replies.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG
    collector: Collector

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        # The connections being served, and those of them waiting for a request (oldest
        # idle first, with when they began to wait); the threads serving connections,
        # those closed for room and still finishing included. All change under the lock.
        self._open: set[socket.socket] = set()
        self._idle: dict[socket.socket, float] = {}
        self._serving = 0
        self._connections_lock = threading.Lock()
        self._thread_ended = threading.Condition(self._connections_lock)
        self._refusals: queue.Queue[socket.socket] = queue.Queue(_REFUSALS_QUEUED)
        self._refuser: threading.Thread | None = None
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a thread of its own if a slot is free or an idle
        connection gives up its slot; else answer it 503 (see the module docstring)."""
        cap = self.collector.max_connections
        with self._connections_lock:
            if self._serving >= cap and self._close_one_idle():
                # Its thread ends as soon as it sees the connection closed.
                self._thread_ended.wait_for(lambda: self._serving < cap,
                                            timeout=CLOSED_THREAD_WAIT_S)
            admitted = self._serving < cap
            if admitted:
                self._serving += 1
                self._open.add(request)
                self._idle[request] = time.monotonic()
        if not admitted:
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: give its slot back
            self._end(request)
            raise

    def _close_one_idle(self) -> bool:
        """Close the connection idle longest, past the grace period, whose client has
        sent nothing unread (call with the lock held); its thread sees the connection end
        and finishes. False when none is idle."""
        waited_since = time.monotonic() - IDLE_GRACE_S
        for connection, since in list(self._idle.items()):
            if since > waited_since:
                return False  # the rest began to wait later still
            if _readable(connection):
                continue  # a request (or the client's close) is arriving: not idle
            del self._idle[connection]
            self._open.discard(connection)
            _shut(connection)
            return True
        return False

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._end(request)

    def _end(self, request: Any) -> None:
        with self._connections_lock:
            self._serving -= 1
            self._open.discard(request)
            self._idle.pop(request, None)
            self._thread_ended.notify()

    def set_idle(self, connection: socket.socket, idle: bool) -> bool:
        """Say whether ``connection`` waits for its next request (and may be closed for
        room). False when it was closed for room meanwhile: its request, if one arrived,
        must be dropped unanswered, as the client sees a closed idle connection."""
        with self._connections_lock:
            if connection not in self._open:
                return False
            self._idle.pop(connection, None)
            if idle:
                self._idle[connection] = time.monotonic()
            return True

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._open)
        for connection in connections:
            _shut(connection)

    def _refuse(self, connection: socket.socket) -> None:
        """Answer a connection past the cap 503 from one thread for all refusals, so a
        flood of connections costs one thread; past a queue of them, close unanswered."""
        self.collector._count(accepted=False)
        try:
            self._refusals.put_nowait(connection)
        except queue.Full:
            connection.close()
            return
        if self._refuser is None:
            self._refuser = threading.Thread(target=self._answer_refusals, daemon=True,
                                             name="halo-collector-refusals")
            self._refuser.start()

    def _answer_refusals(self) -> None:
        while True:
            connection = self._refusals.get()
            try:
                connection.settimeout(1.0)
                connection.sendall(_BUSY_RESPONSE)
                connection.shutdown(socket.SHUT_WR)
                # Read what the client sent, for up to a second: closing with it unread
                # would reset the connection and could discard the answer at the client.
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline and connection.recv(_READ_STEP):
                    pass
            except OSError:
                pass
            finally:
                connection.close()


def _readable(connection: socket.socket) -> bool:
    """Whether the client sent something not read yet, without waiting (a socket with a
    timeout would wait for it in recv, whatever the flags)."""
    poller = select.poll()
    try:
        poller.register(connection, select.POLLIN)
    except (OSError, ValueError):  # closed meanwhile
        return True
    return bool(poller.poll(0))


def _shut(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _busy_response() -> bytes:
    body = Status(code=_GRPC_CODE[503],
                  message="the collector is serving as many connections as it may "
                          "(max_connections), none of them idle; retry shortly"
                  ).SerializeToString()
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: {PROTOBUF}\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: {BUSY_RETRY_AFTER_S}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode() + body


_BUSY_RESPONSE = _busy_response()


class _DeadlinePassed(Exception):
    """A request did not arrive in time (deliberately not a TimeoutError, which
    BaseHTTPRequestHandler swallows without answering)."""


class _DeadlineReader(io.RawIOBase):
    """A connection's reads, each bounded by the current request's deadline.

    Between requests a read waits up to ``idle_timeout`` (keep-alive). The first bytes of a
    request start its clock: every later read waits only for what is left of
    ``request_timeout``, so a client that trickles a byte at a time, or announces more
    body than it sends, is cut off at the deadline rather than after each read's timeout.
    """

    def __init__(self, sock: socket.socket, idle_timeout: float, request_timeout: float,
                 on_request_start: Callable[[], bool]) -> None:
        super().__init__()
        self._sock = sock
        self._idle_timeout = idle_timeout
        self._request_timeout = request_timeout
        self._on_request_start = on_request_start
        self._deadline: float | None = None

    def readable(self) -> bool:
        return True

    def next_request(self) -> None:
        """The connection now waits for a new request: the idle timeout applies again."""
        self._deadline = None

    def readinto(self, buffer: Any) -> int:
        deadline = self._deadline
        if deadline is None:
            self._sock.settimeout(self._idle_timeout)
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _DeadlinePassed
            self._sock.settimeout(left)
        try:
            received = self._sock.recv_into(buffer)
        except TimeoutError:
            if deadline is None:
                raise  # an idle keep-alive connection: closed quietly
            raise _DeadlinePassed from None
        if deadline is None and received:
            self._deadline = time.monotonic() + self._request_timeout
            if not self._on_request_start():
                raise ConnectionResetError("closed to make room for another connection")
        return received


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "halo_nb"
    # Idle keep-alive connections are dropped after this many seconds.
    timeout = 60
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the plain reader: reads go through the deadline instead
        self._reader = _DeadlineReader(self.connection, self.timeout,
                                       self.server.collector.request_timeout_seconds,
                                       self._busy)
        self.rfile = io.BufferedReader(self._reader, 64 * 1024)
        self._body = 0  # body bytes this request counted (raw and decompressed)
        self._held = 0  # of them, those held of the collector's budget

    def _busy(self) -> bool:
        return self.server.set_idle(self.connection, False)

    def parse_request(self) -> bool:
        if not self._busy():  # a pipelined request arrives without a read
            self.close_connection = True
            return False
        return super().parse_request()

    def handle_one_request(self) -> None:
        self._reader.next_request()
        self.server.set_idle(self.connection, True)
        # What an answer needs if the request line itself never arrives whole.
        self.requestline, self.request_version, self.command = "", self.protocol_version, None
        try:
            super().handle_one_request()
        except _DeadlinePassed:
            self._too_slow()
        except ConnectionError:  # the client reset or left mid-request: nothing to answer
            self.close_connection = True

    def _too_slow(self) -> None:
        self.close_connection = True
        self.server.collector._count(accepted=False)
        timeout = self.server.collector.request_timeout_seconds
        self._send_status(408, f"the request did not arrive within {timeout:g} s "
                               "(request_timeout_seconds)", self._response_type())

    def finish(self) -> None:
        self._release()  # whatever ended the connection, its bodies hold nothing now
        self._busy()
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        log.debug("%s %s", self.address_string(), format % args)

    # ---- routing -------------------------------------------------------------------------

    def do_POST(self) -> None:
        collector = self.server.collector
        response_type = self._response_type()
        body_read = False
        try:
            self._check_host()
            if self.path.split("?", 1)[0] != TRACES_PATH:
                raise _Reject(404, f"no such path {_cut(self.path)!r}; OTLP traces go to "
                                   f"{TRACES_PATH}")
            content_type = self._content_type()
            body = self._read_body(collector.max_body_bytes)
            body_read = True
            try:
                result = collector.ingest(body, content_type)
            except OTLPDecodeError as exc:
                raise _Reject(400, str(exc)) from None
        except _Reject as reject:
            if not body_read:  # the unread rest would be taken for the next request
                self.close_connection = True
            collector._count(accepted=False)
            retry = ({"Retry-After": str(reject.retry_after_s)}
                     if reject.retry_after_s is not None else None)
            self._send_status(reject.status, reject.message, response_type, extra=retry)
            return
        except StoreUnavailable as exc:  # store at its memory ceiling, or a sync write failed
            collector._count(accepted=False)
            self._send_status(503, str(exc), response_type,
                              extra={"Retry-After": str(exc.retry_after_s)})
            return
        except Exception as exc:  # never let one request take the server down
            log.exception("halo_nb collector: request failed")
            collector._count(accepted=False)
            self._send_status(500, f"internal error: {exc}", response_type)
            return
        collector._count(accepted=True, spans_ok=result.accepted, spans_bad=result.rejected)
        self._send_success(result, content_type)

    def _other_method(self) -> None:
        path = self.path.split("?", 1)[0]
        self.close_connection = True
        self.server.collector._count(accepted=False)
        try:
            self._check_host()
        except _Reject as reject:
            self._send_status(reject.status, reject.message, PROTOBUF)
            return
        if path == TRACES_PATH:
            self._send_status(405, f"method {self.command} not allowed on {TRACES_PATH}; "
                                   "use POST", PROTOBUF, extra={"Allow": "POST"})
        else:
            self._send_status(404, f"no such path {_cut(self.path)!r}; OTLP traces go to "
                                   f"POST {TRACES_PATH}", PROTOBUF)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _other_method

    # ---- request parts -------------------------------------------------------------------

    def _media_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()

    def _response_type(self) -> str:
        headers = getattr(self, "headers", None)  # absent when the headers never arrived
        return JSON if headers is not None and self._media_type() == JSON else PROTOBUF

    def _check_host(self) -> None:
        """Refuse requests addressed to a name other than this collector's (DNS rebinding:
        a page whose name now resolves to 127.0.0.1 still sends that name)."""
        values = self.headers.get_all("Host") or []
        if len(values) != 1:
            raise _Reject(400, f"a request needs exactly one Host header, got {len(values)}")
        name = _host_name(values[0])
        if name is None or not self._host_allowed(name):
            configured = self.server.collector.host
            raise _Reject(403, f"Host {_cut(values[0])!r} is not allowed: the collector "
                               "answers requests addressed to localhost, 127.0.0.1, [::1] or "
                               f"{configured!r} (its host setting), so a web page cannot "
                               "post spans to it through DNS rebinding")

    def _host_allowed(self, name: str) -> bool:
        configured = self.server.collector.host.strip().lower().strip("[]").removesuffix(".")
        if name in _LOOPBACK_NAMES or name == configured:
            return True
        try:
            address = ipaddress.ip_address(name)
            local = ipaddress.ip_address(self.connection.getsockname()[0])
        except ValueError:
            return False
        if isinstance(local, ipaddress.IPv6Address) and local.ipv4_mapped is not None:
            local = local.ipv4_mapped
        # An address literal names no DNS entry to rebind: the loopback range, or the
        # address the client reached this socket at.
        return address.is_loopback or address == local

    def _content_type(self) -> str:
        media = self._media_type()
        content_type = _CONTENT_TYPES.get(media)
        if content_type is None:
            raise _Reject(415, f"unsupported Content-Type {media or '(none)'!r}; send "
                               f"{PROTOBUF} or {JSON}")
        return content_type

    def _read_body(self, limit: int) -> bytes:
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            raise _Reject(415, f"unsupported Content-Encoding {_cut(encoding)!r}; send gzip "
                               "or none")
        lengths = self.headers.get_all("Content-Length") or []
        codings = [c.strip().lower() for value in self.headers.get_all("Transfer-Encoding") or []
                   for c in value.split(",")]
        if len(lengths) > 1:
            raise _Reject(400, f"{len(lengths)} Content-Length headers; send one")
        if codings and lengths:
            raise _Reject(400, "both Content-Length and Transfer-Encoding; send one of them")
        if codings and codings != ["chunked"]:
            raise _Reject(501, f"unsupported Transfer-Encoding {_cut(', '.join(codings))!r}; "
                               "send chunked or a Content-Length")
        try:
            raw = self._read_chunked(limit) if codings else self._read_sized(lengths, limit)
        except _DeadlinePassed:
            timeout = self.server.collector.request_timeout_seconds
            raise _Reject(408, f"the body did not arrive within {timeout:g} s of the "
                               "request's start (request_timeout_seconds)") from None
        except ConnectionError:
            raise _Reject(400, "the connection was reset before the body ended") from None
        if encoding == "gzip":
            return _gunzip(raw, limit, self._hold)
        return raw

    def _release(self) -> None:
        """Give the request's body bytes back to the budget."""
        self.server.collector.body_budget.give(self._held)
        self._body = self._held = 0

    def _hold(self, size: int) -> None:
        """Count ``size`` more body bytes: past the request's allowance, against the
        collector's budget, refusing the request (503) when they would pass it."""
        collector = self.server.collector
        charge = (max(0, self._body + size - collector.body_allowance_bytes)
                  - max(0, self._body - collector.body_allowance_bytes))
        budget = collector.body_budget
        if charge and not budget.take(charge):
            raise _Reject(503, f"the collector holds {budget.held:,} bytes of large request "
                               f"bodies and {charge:,} more would pass max_buffered_bytes "
                               f"({budget.limit:,}); retry shortly",
                          retry_after_s=BUSY_RETRY_AFTER_S)
        self._body += size
        self._held += charge

    def _read_sized(self, lengths: list[str], limit: int) -> bytes:
        if not lengths:
            raise _Reject(411, "Content-Length or chunked Transfer-Encoding is required")
        text = lengths[0].strip()
        if not _DIGITS.fullmatch(text):
            raise _Reject(400, f"invalid Content-Length {_cut(lengths[0])!r}")
        length = int(text)
        if length > limit:
            raise _Reject(413, f"body of {length} bytes exceeds the limit of {limit} bytes "
                               "(max_body_bytes)")
        self._hold(length)
        return self._read_exactly(length)

    def _read_exactly(self, length: int) -> bytes:
        """``length`` bytes, read in steps: memory grows with what arrives, not with what
        the header announced."""
        pieces: list[bytes] = []
        left = length
        while left:
            piece = self.rfile.read(min(left, _READ_STEP))
            if not piece:
                raise _Reject(400, f"body ended after {length - left} of {length} bytes")
            pieces.append(piece)
            left -= len(piece)
        return b"".join(pieces)

    def _read_line(self, what: str) -> bytes:
        line = self.rfile.readline(_MAX_CHUNK_LINE + 1)
        if not line.endswith(b"\n"):
            if len(line) > _MAX_CHUNK_LINE:
                raise _Reject(400, f"{what} longer than {_MAX_CHUNK_LINE} bytes")
            raise _Reject(400, f"body ended inside a {what}")
        return line

    def _read_chunked(self, limit: int) -> bytes:
        """A chunked body (RFC 9112 section 7.1): strict sizes, never more than ``limit``
        bytes of data, nor more than ``limit`` bytes of framing around them."""
        pieces: list[bytes] = []
        size = framing = 0
        while True:
            line = self._read_line("chunk-size line")
            framing += len(line) + 2
            digits = line.split(b";", 1)[0].strip(b" \t\r\n")
            if not _CHUNK_SIZE.fullmatch(digits):
                raise _Reject(400, f"malformed chunk size {_cut(repr(line))}; expected hex "
                                   "digits")
            chunk = int(digits, 16)
            if chunk == 0:
                break
            size += chunk
            if size > limit:
                raise _Reject(413, f"body exceeds the limit of {limit} bytes (max_body_bytes)")
            if framing > limit:
                raise _Reject(413, f"chunk framing exceeds {limit} bytes (max_body_bytes); "
                                   "send larger chunks")
            self._hold(chunk)
            pieces.append(self._read_exactly(chunk))
            if self.rfile.read(2) != b"\r\n":
                raise _Reject(400, "a chunk's data is not followed by CRLF")
        for _ in range(_MAX_TRAILERS):
            if self._read_line("trailer line") in (b"\r\n", b"\n"):
                return b"".join(pieces)
        raise _Reject(400, f"more than {_MAX_TRAILERS} trailer lines")

    # ---- responses -----------------------------------------------------------------------

    def _send_success(self, result: DecodeResult, content_type: str) -> None:
        if content_type == JSON:
            payload: dict[str, Any] = {}
            if result.rejected:
                payload["partialSuccess"] = {"rejectedSpans": str(result.rejected),
                                             "errorMessage": result.error_message()}
            body = json.dumps(payload).encode()
        else:
            response = ExportTraceServiceResponse()
            if result.rejected:
                response.partial_success.rejected_spans = result.rejected
                response.partial_success.error_message = result.error_message()
            body = response.SerializeToString()
        self._send(200, content_type, body)

    def _send_status(self, status: int, message: str, content_type: str,
                     extra: dict[str, str] | None = None) -> None:
        code = _GRPC_CODE.get(status, 2)
        if content_type == JSON:
            body = json.dumps({"code": code, "message": message}).encode()
        else:
            body = Status(code=code, message=message).SerializeToString()
        self._send(status, content_type, body, extra)

    def _send(self, status: int, content_type: str, body: bytes,
              extra: dict[str, str] | None = None) -> None:
        self._release()  # before answering: a client that got its answer finds them free
        self.connection.settimeout(self.timeout)  # reads may have left it near zero
        try:
            self.send_response(status, HTTPStatus(status).phrase)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:  # the client is gone (reset, broken pipe, or not reading)
            self.close_connection = True


def _host_name(value: str) -> str | None:
    """The name in a Host header value (lower case, port and IPv6 brackets removed), or
    None when it is malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, port = value[1:].partition("]")
        if not bracket or (port and not (port[0] == ":" and _is_port(port[1:]))):
            return None
    else:
        name, colon, port = value.partition(":")
        if colon and not _is_port(port):
            return None
    return name.removesuffix(".") or None


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5


def _cut(text: str, size: int = 100) -> str:
    """``text`` cut short for a message: a hostile header never comes back whole."""
    return text if len(text) <= size else text[:size] + "..."


def _gunzip(raw: bytes, limit: int, hold: Callable[[int], None]) -> bytes:
    """Decompress gzip (possibly multi-member) without ever holding more than ``limit``
    decompressed bytes; ``hold`` counts each piece against the body budget first."""
    out: list[bytes] = []
    size = 0
    data = raw
    while data:
        inflater = zlib.decompressobj(wbits=31)
        while not inflater.eof:
            try:
                piece = inflater.decompress(data, _READ_STEP)
            except zlib.error as exc:
                raise _Reject(400, f"body is not valid gzip ({exc})") from None
            data = inflater.unconsumed_tail
            if not piece and not data:
                raise _Reject(400, "body is not valid gzip (truncated stream)")
            size += len(piece)
            if size > limit:
                raise _Reject(413, f"decompressed body exceeds the limit of {limit} bytes "
                                   "(max_body_bytes)")
            hold(len(piece))
            out.append(piece)
        data = inflater.unused_data
    return b"".join(out)
