"""Replay: re-send a snapshot's spans to any OTLP/HTTP trace endpoint.

The snapshot is read and verified like an import, then its OTLP payload is sent as
protobuf (what OTel SDK exporters send) or JSON, in requests of at most
``batch_size`` spans. Optionally every trace and span gets a fresh id (parents and
links remapped consistently) and every timestamp moves by the same offset, so the
replayed traces sit beside the originals instead of being dropped as duplicates.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from .otlp_encode import iter_spans, request_to_protobuf
from .snapshot import read_snapshot

TRACES_PATH = "/v1/traces"
CONTENT_TYPES = {"protobuf": "application/x-protobuf", "json": "application/json"}
DEFAULT_BATCH_SIZE = 1000


class ReplayError(RuntimeError):
    """The endpoint could not be reached or refused the spans; the message says which."""


@dataclass(frozen=True)
class ReplayResult:
    """What was sent: counts, the ``trace_ids`` map (original → sent; identical without
    fresh ids), the time offset applied, and spans the endpoint reported rejecting."""

    endpoint: str
    encoding: str
    requests: int
    spans_sent: int
    spans_rejected: int
    trace_ids: dict[str, str]
    shift_ns: int
    messages: list[str] = field(default_factory=list)

    @property
    def traces_sent(self) -> int:
        return len(self.trace_ids)


def replay(path: Path | str, endpoint: str, *, encoding: str = "protobuf",
           fresh_ids: bool = False, shift_to_now: bool = False, shift_ns: int = 0,
           batch_size: int = DEFAULT_BATCH_SIZE, timeout: float = 30.0,
           headers: Mapping[str, str] | None = None) -> ReplayResult:
    """Send the spans of the snapshot at ``path`` to ``endpoint``.

    ``endpoint`` is a base URL (``http://host:4318``) or the full ``.../v1/traces``.
    ``shift_to_now`` moves the earliest span to the current time; ``shift_ns`` moves
    every timestamp by that many nanoseconds (use one or the other). Without fresh ids
    an endpoint that already holds these spans (halo's own collector dedupes by span
    id) keeps its copies and stores nothing new. Raises
    ``ReplayError`` on a connection failure or a non-2xx answer, with the server's
    message and how many spans had already been accepted.
    """
    if encoding not in CONTENT_TYPES:
        raise ValueError(f"encoding: expected 'protobuf' or 'json', got {encoding!r}")
    if shift_to_now and shift_ns:
        raise ValueError("give shift_to_now or shift_ns, not both")
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size!r}")
    url = traces_url(endpoint)
    snapshot = read_snapshot(path)
    request = snapshot.payload  # freshly read: safe to rewrite in place
    spans = list(iter_spans(request))
    if shift_to_now and spans:
        shift_ns = time.time_ns() - min(int(s.get("startTimeUnixNano") or 0) for s in spans)
    if shift_ns:
        shift_times(request, shift_ns)
    if fresh_ids:
        trace_map = assign_fresh_ids(request)
    else:
        trace_map = {span["traceId"]: span["traceId"] for span in spans}

    sent = rejected = requests = 0
    messages: list[str] = []
    for chunk in split_request(request, batch_size):
        count = sum(1 for _ in iter_spans(chunk))
        try:
            chunk_rejected, message = _post(url, chunk, encoding, timeout, headers or {})
        except ReplayError as exc:
            done = f"; {sent} span(s) were accepted before this" if sent else ""
            raise ReplayError(f"{exc}{done}") from None
        requests += 1
        sent += count - chunk_rejected
        rejected += chunk_rejected
        if message:
            messages.append(message)
    return ReplayResult(url, encoding, requests, sent, rejected, dict(trace_map),
                        shift_ns, messages)


def traces_url(endpoint: str) -> str:
    """The full trace URL for a base URL or a ``.../v1/traces`` URL."""
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"endpoint: expected an http(s) URL such as http://127.0.0.1:4318, "
                         f"got {endpoint!r}")
    path = parts.path.rstrip("/")
    if not path.endswith(TRACES_PATH):
        path += TRACES_PATH
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def shift_times(request: dict[str, Any], shift_ns: int) -> None:
    """Move every span and event timestamp by ``shift_ns`` (in place)."""
    for span in iter_spans(request):
        for key in ("startTimeUnixNano", "endTimeUnixNano"):
            if int(span.get(key) or 0):
                span[key] = str(int(span[key]) + shift_ns)
        for event in span.get("events") or ():
            if int(event.get("timeUnixNano") or 0):
                event["timeUnixNano"] = str(int(event["timeUnixNano"]) + shift_ns)


def assign_fresh_ids(request: dict[str, Any]) -> dict[str, str]:
    """Give every trace and span of the request a new random id (in place); returns the
    trace id map, old → new. Parents and links follow their spans; one outside the
    request gets a fresh id too, the same wherever it appears, so partial traces keep
    their shape."""
    traces: dict[str, str] = {}
    spans: dict[str, str] = {}

    def remap(ids: dict[str, str], old: str, size: int) -> str:
        if old not in ids:
            ids[old] = secrets.token_hex(size)
        return ids[old]

    for span in iter_spans(request):
        span["traceId"] = remap(traces, span["traceId"], 16)
        span["spanId"] = remap(spans, span["spanId"], 8)
        if span.get("parentSpanId"):
            span["parentSpanId"] = remap(spans, span["parentSpanId"], 8)
        for link in span.get("links") or ():
            link["traceId"] = remap(traces, link["traceId"], 16)
            link["spanId"] = remap(spans, link["spanId"], 8)
    return traces


def split_request(request: Mapping[str, Any], batch_size: int) -> Iterator[dict[str, Any]]:
    """The request cut into requests of at most ``batch_size`` spans, each span keeping
    its resource and scope."""
    out: list[dict[str, Any]] = []
    count = 0
    for resource_spans in request.get("resourceSpans") or ():
        for scope_spans in resource_spans.get("scopeSpans") or ():
            spans = scope_spans.get("spans") or []
            start = 0
            while start < len(spans):
                part = spans[start:start + batch_size - count]
                out.append({
                    "resource": resource_spans.get("resource") or {},
                    "scopeSpans": [{"scope": scope_spans.get("scope") or {}, "spans": part}],
                })
                count += len(part)
                start += len(part)
                if count == batch_size:
                    yield {"resourceSpans": out}
                    out, count = [], 0
    if out:
        yield {"resourceSpans": out}


def _post(url: str, request: Mapping[str, Any], encoding: str, timeout: float,
          headers: Mapping[str, str]) -> tuple[int, str | None]:
    """POST one request; returns (rejected spans, partial-success message)."""
    if encoding == "json":
        body = json.dumps(request, ensure_ascii=False, allow_nan=False).encode("utf-8")
    else:
        body = request_to_protobuf(request)
    http_request = urllib.request.Request(
        url, data=body, method="POST",
        headers={**headers, "Content-Type": CONTENT_TYPES[encoding]})
    try:
        with urllib.request.urlopen(http_request, timeout=timeout) as response:
            return _partial_success(response.read(), response.headers.get("Content-Type"))
    except urllib.error.HTTPError as exc:
        message = _error_message(exc.read(), exc.headers.get("Content-Type"))
        raise ReplayError(f"{url} answered HTTP {exc.code} {exc.reason}: {message}") from None
    except urllib.error.URLError as exc:
        raise ReplayError(f"cannot reach {url}: {exc.reason}") from None
    except OSError as exc:
        raise ReplayError(f"cannot reach {url}: {exc}") from None


def _partial_success(body: bytes, content_type: str | None) -> tuple[int, str | None]:
    if not body:
        return 0, None
    if _is_json(content_type):
        try:
            partial = (json.loads(body) or {}).get("partialSuccess") or {}
            return int(partial.get("rejectedSpans") or 0), partial.get("errorMessage") or None
        except (ValueError, AttributeError, TypeError):
            return 0, None
    try:
        response = ExportTraceServiceResponse.FromString(body)
    except DecodeError:
        return 0, None
    partial = response.partial_success
    return partial.rejected_spans, partial.error_message or None


def _error_message(body: bytes, content_type: str | None) -> str:
    if _is_json(content_type):
        try:
            data = json.loads(body)
            if isinstance(data, dict) and data.get("message"):
                return str(data["message"])
        except ValueError:
            pass
    elif content_type and "protobuf" in content_type:
        try:
            status = Status.FromString(body)
            if status.message:
                return status.message
        except DecodeError:
            pass
    text = body.decode("utf-8", "replace").strip()
    return " ".join(text.split())[:500] or "(no message)"


def _is_json(content_type: str | None) -> bool:
    return bool(content_type) and "json" in content_type.lower()
