"""A loopback OTLP/HTTP trace receiver that keeps what exporters send, as OTLP JSON
(protobuf bodies converted by the OTLP JSON mapping: hex ids, enums as numbers)."""

from __future__ import annotations

import base64
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def protobuf_to_json(body: bytes) -> dict[str, Any]:
    """An ExportTraceServiceRequest in protobuf as its OTLP JSON form."""
    request = ExportTraceServiceRequest.FromString(body)
    return _hex_ids(MessageToDict(request, use_integers_for_enums=True))


def _hex_ids(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (base64.b64decode(v).hex() if k in _ID_KEYS else _hex_ids(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """A request body sent with Content-Length or chunked (as Node's http client does)."""
    if handler.headers.get("Transfer-Encoding", "").lower() != "chunked":
        return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    parts = []
    while True:
        size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            handler.rfile.readline()
            return b"".join(parts)
        parts.append(handler.rfile.read(size))
        handler.rfile.readline()


class OTLPSink:
    """Receives on ``url`` (``…/v1/traces``); ``take()`` returns and clears the
    resourceSpans received so far."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resource_spans: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v1/traces"

    def take(self) -> list[dict[str, Any]]:
        with self._lock:
            taken, self._resource_spans = self._resource_spans, []
        return taken

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _keep(self, request: dict[str, Any]) -> None:
        with self._lock:
            self._resource_spans.extend(request.get("resourceSpans") or [])

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802 (stdlib name)
                body = read_body(self)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    sink._keep(json.loads(body))
                    reply, content_type = b"{}", "application/json"
                else:
                    sink._keep(protobuf_to_json(body))
                    reply = ExportTraceServiceResponse().SerializeToString()
                    content_type = "application/x-protobuf"
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        return Handler
