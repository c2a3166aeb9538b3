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

A bad request never stops the server and never touches spans already stored.

Protobuf bodies are decoded natively (``otlp.decode_protobuf``: C that runs without the
GIL) in the request's own thread, so concurrent exporters decode on every core while the
kernel's main thread stays free. JSON bodies are decoded in Python (about 25 us a span,
holding the GIL), so large ones go to a few worker processes: the kernel writes the body
to a worker's stdin, the worker answers with the frame serialized, and the kernel only
reads bodies, appends frames and answers. Workers are plain ``python -c`` children (not
multiprocessing, which would re-import the user's ``__main__``); they exit when their
stdin closes, so they die with the kernel. Small JSON bodies (under ``POOL_MIN_BYTES``)
are decoded in the handler thread, where the round trip would cost more than it saves.
The workers start with the first large JSON body (or ``start_decoders()``); if one dies,
that request is decoded in-thread and a new worker replaces it. Errors are the same
either way: a worker reports ``OTLPDecodeError``'s message or the partial-success details.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
import zlib
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import polars as pl
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from ..storage.errors import StoreUnavailable
from ..storage.store import SpanStore
from .otlp import DecodeResult, OTLPDecodeError, decode_json, decode_protobuf
from .span_batch import SpanBatch

log = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_CONTENT_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}
# gRPC status codes carried in google.rpc.Status.code.
_GRPC_CODE = {400: 3, 411: 3, 413: 8, 415: 3, 404: 5, 405: 12, 500: 13, 503: 14}
_READ_STEP = 1 << 20
# JSON bodies at least this large are decoded in a worker process.
POOL_MIN_BYTES = 64 * 1024
DEFAULT_DECODE_WORKERS = max(1, min(4, os.cpu_count() or 1))


class CollectorError(RuntimeError):
    """The collector cannot start."""


@dataclass
class CollectorCounts:
    requests_accepted: int = 0
    requests_rejected: int = 0
    spans_accepted: int = 0
    spans_rejected: int = 0


class _Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Collector:
    """An OTLP/HTTP receiver feeding ``store``. ``port=0`` binds a free port."""

    def __init__(self, store: SpanStore, host: str = "127.0.0.1", port: int = 4281,
                 max_body_bytes: int = 64 * 1024 * 1024,
                 decode_workers: int = DEFAULT_DECODE_WORKERS) -> None:
        self.store = store
        self.host = host
        self.requested_port = port
        self.max_body_bytes = max_body_bytes
        self.decode_workers = decode_workers
        self._appender = _GroupAppender(store)
        self._decoders: _Decoders | None = None
        self._decoders_lock = threading.Lock()
        self._counts = CollectorCounts()
        self._counts_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

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
        """Decode a request body (a large JSON one in a worker process) and store its
        spans."""
        large_json = content_type == JSON and len(body) >= POOL_MIN_BYTES
        decoders = self._decoder_pool() if large_json else None
        result = None
        if decoders is not None:
            try:
                result = decoders.decode(body, content_type)
            except _WorkerDied as exc:
                log.warning("halo_nb collector: %s; decoding in-thread", exc)
        if result is None:
            result = _decode(body, content_type)
        self._appender.append(result.span_batch())
        return result

    def _decoder_pool(self) -> _Decoders | None:
        if self.decode_workers < 1:
            return None
        with self._decoders_lock:
            if self._decoders is None:
                self._decoders = _Decoders(self.decode_workers)
            return self._decoders


class _GroupAppender:
    """Appends the spans of concurrent requests to the store together (a group commit).

    While one request's spans are being appended, the batches other requests decoded
    meanwhile queue up and the next appender takes them all, so the store's lock is taken
    once for them and a duplicate check that needs Polars runs once. A request still
    returns only after its own spans are stored, and every appender drains the queue once,
    so none waits on another's stream of work.
    """

    def __init__(self, store: SpanStore) -> None:
        self._store = store
        self._queue: list[_Queued] = []
        self._queue_lock = threading.Lock()
        self._append_lock = threading.Lock()

    def append(self, batch: SpanBatch) -> None:
        mine = _Queued(batch)
        with self._queue_lock:
            self._queue.append(mine)
        with self._append_lock:
            if not mine.done:
                with self._queue_lock:
                    group, self._queue = self._queue, []
                try:
                    self._store.append_batches([queued.batch for queued in group])
                except Exception as exc:
                    for queued in group:
                        queued.error = exc
                finally:
                    for queued in group:
                        queued.done = True
        if mine.error is not None:
            raise mine.error


@dataclass
class _Queued:
    batch: SpanBatch
    done: bool = False
    error: Exception | None = None


def _decode(body: bytes, content_type: str) -> DecodeResult:
    return (decode_protobuf if content_type == PROTOBUF else decode_json)(body)


class _WorkerDied(RuntimeError):
    pass


_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_WORKER_CODE = "from halo_nb.ingest.server import decoder_main; decoder_main()"


class _Decoders:
    """Decoding worker processes; a request borrows an idle one (waiting when all are
    busy, which is the back-pressure on exporters)."""

    def __init__(self, count: int) -> None:
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
        worker = subprocess.Popen([sys.executable, "-c", _WORKER_CODE], env=env,
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


def decoder_main() -> None:
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
                result = _decode(payload[1:], content_type)
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
    collector: Collector

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "halo_nb"
    # Idle keep-alive connections are dropped after this many seconds.
    timeout = 60
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        log.debug("%s %s", self.address_string(), format % args)

    # ---- routing -------------------------------------------------------------------------

    def do_POST(self) -> None:
        collector = self.server.collector
        response_type = JSON if self._media_type() == JSON else PROTOBUF
        body_read = False
        try:
            if self.path.split("?", 1)[0] != TRACES_PATH:
                raise _Reject(404, f"no such path {self.path!r}; OTLP traces go to {TRACES_PATH}")
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
            self._send_status(reject.status, reject.message, response_type)
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
        if path == TRACES_PATH:
            self._send_status(405, f"method {self.command} not allowed on {TRACES_PATH}; "
                                   "use POST", PROTOBUF, extra={"Allow": "POST"})
        else:
            self._send_status(404, f"no such path {self.path!r}; OTLP traces go to "
                                   f"POST {TRACES_PATH}", PROTOBUF)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _other_method

    # ---- request parts -------------------------------------------------------------------

    def _media_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()

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
            raise _Reject(415, f"unsupported Content-Encoding {encoding!r}; send gzip or none")
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raw = self._read_chunked(limit)
        else:
            raw = self._read_sized(limit)
        if encoding == "gzip":
            return _gunzip(raw, limit)
        return raw

    def _read_sized(self, limit: int) -> bytes:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise _Reject(411, "Content-Length or chunked Transfer-Encoding is required")
        try:
            length = int(length_header)
            if length < 0:
                raise ValueError
        except ValueError:
            raise _Reject(400, f"invalid Content-Length {length_header!r}") from None
        if length > limit:
            raise _Reject(413, f"body of {length} bytes exceeds the limit of {limit} bytes "
                               "(max_body_bytes)")
        body = self.rfile.read(length)
        if len(body) != length:
            raise _Reject(400, f"body ended after {len(body)} of {length} bytes")
        return body

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                chunk = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _Reject(400, f"malformed chunk header {line[:40]!r}") from None
            if chunk == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            size += chunk
            if size > limit:
                raise _Reject(413, f"body exceeds the limit of {limit} bytes (max_body_bytes)")
            parts.append(self.rfile.read(chunk))
            self.rfile.readline(3)

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
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _gunzip(raw: bytes, limit: int) -> bytes:
    """Decompress gzip (possibly multi-member) without ever holding more than ``limit``
    decompressed bytes."""
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
            out.append(piece)
        data = inflater.unused_data
    return b"".join(out)
