"""A local OpenAI-compatible chat-completions server that answers from the scenario
scripts (scenarios.py), for recording real instrumentation libraries' spans.

The scenario is the first path segment: a client configured with base URL
``http://127.0.0.1:<port>/<scenario>/v1`` gets that scenario's script. Answers are
stateless (the step is the number of assistant turns in the request) and token counts
are derived from the request and reply text, so a conversation's growth shows in its
usage like a real model's would. Each answer takes a model-like time (LATENCY_S plus
PER_TOKEN_S per output token): against an instant mock, a client's one-off connection
setup on its first call would look like a slow model."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .otlp_sink import read_body
from .scenarios import CITIES, SCRIPTS, Answer, ToolCall, step_for

MODEL = "gpt-4o-mini-2024-07-18"
LATENCY_S = 0.15
PER_TOKEN_S = 0.002
CREATED = 1_767_225_600
_CITY = re.compile("|".join(CITIES))


def _tokens(text: str) -> int:
    """About four characters a token, as OpenAI's tokenizers give for English and JSON."""
    return max(1, (len(text) + 3) // 4)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _city(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        if message.get("role") == "user":
            found = _CITY.search(_text(message.get("content")))
            if found:
                return found.group(0)
    return CITIES[0]


def completion(scenario: str, request: dict[str, Any]) -> dict[str, Any]:
    """The chat.completion object answering ``request`` in ``scenario``."""
    messages = request.get("messages") or []
    turns = sum(1 for m in messages if m.get("role") == "assistant")
    city = _city(messages)
    step = step_for(scenario, turns)
    if isinstance(step, ToolCall):
        arguments = json.dumps({k: v.format(city=city) for k, v in step.arguments.items()})
        message: dict[str, Any] = {
            "role": "assistant", "content": None,
            "tool_calls": [{"id": f"call_{scenario[:6]}_{turns}", "type": "function",
                            "function": {"name": step.name, "arguments": arguments}}]}
        finish, reply = "tool_calls", step.name + arguments
    else:
        assert isinstance(step, Answer)
        message = {"role": "assistant", "content": step.text.format(city=city)}
        finish, reply = "stop", message["content"]
    prompt = _tokens(json.dumps(messages) + json.dumps(request.get("tools") or []))
    answer = _tokens(reply)
    return {"id": f"chatcmpl-{scenario}-{turns}", "object": "chat.completion",
            "created": CREATED, "model": MODEL, "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "message": message, "finish_reason": finish,
                         "logprobs": None}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": answer,
                      "total_tokens": prompt + answer}}


def stream_chunks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The same answer as chat.completion.chunk objects (for clients that stream)."""
    choice = body["choices"][0]
    base = {"id": body["id"], "object": "chat.completion.chunk", "created": CREATED,
            "model": MODEL, "system_fingerprint": "fp_mock"}
    delta: dict[str, Any] = {"role": "assistant", "content": choice["message"]["content"]}
    if choice["message"].get("tool_calls"):
        delta["tool_calls"] = [{"index": 0, **call}
                               for call in choice["message"]["tool_calls"]]
    return [{**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {},
                                  "finish_reason": choice["finish_reason"]}]},
            {**base, "choices": [], "usage": body["usage"]}]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        pass

    def do_POST(self) -> None:  # noqa: N802 (stdlib name)
        parts = self.path.strip("/").split("/")
        request = json.loads(read_body(self) or b"{}")
        if len(parts) < 3 or parts[0] not in SCRIPTS or parts[-2:] != ["chat", "completions"]:
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        body = completion(parts[0], request)
        time.sleep(LATENCY_S + PER_TOKEN_S * body["usage"]["completion_tokens"])
        if request.get("stream"):
            events = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in stream_chunks(body))
            self._send_raw(200, (events + "data: [DONE]\n\n").encode(), "text/event-stream")
        else:
            self._send(200, body)

    def _send(self, code: int, body: dict[str, Any]) -> None:
        self._send_raw(code, json.dumps(body).encode(), "application/json")

    def _send_raw(self, code: int, data: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class MockOpenAI:
    """The server on a free loopback port, in a daemon thread; ``url(scenario)`` is the
    base URL a client uses."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, scenario: str) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/{scenario}/v1"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
