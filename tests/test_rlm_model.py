"""The narrative step: the bundled local model (real, on the CPU), an OpenAI-compatible
endpoint on loopback, and every way the model can be unavailable."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import polars as pl
import pytest
from test_rlm_engine import research_agent_runs
from test_rlm_support import analyze

from halo_nb.rlm.model import load_backend


@pytest.fixture(scope="module")
def quickstart_frame() -> pl.DataFrame:
    frame, _ = research_agent_runs(12, seed=3)
    return frame


@pytest.mark.model
def test_bundled_model_writes_the_narrative_deterministically(quickstart_frame):
    first = analyze(quickstart_frame, model="smollm2")
    assert first.model_status == "ok: SmolLM2-135M-Instruct (llama-cpp, CPU)"
    assert len(first.clusters) == 1
    narrative = first.hypotheses["narrative"][0]
    assert isinstance(narrative, str) and len(narrative.split()) >= 5
    again = analyze(quickstart_frame, model="smollm2")
    assert again.hypotheses["narrative"][0] == narrative
    # The model phrases; it decides nothing: every other output is the model-free one.
    plain = analyze(quickstart_frame)
    assert first.clusters.equals(plain.clusters)
    assert first.hypotheses.drop("narrative").equals(plain.hypotheses.drop("narrative"))


@pytest.mark.model
def test_openai_compatible_endpoint_on_loopback(quickstart_frame):
    """A local OpenAI-compatible server (here: the bundled model behind /v1/chat/completions)."""
    model = load_backend("smollm2", 42)._model()
    requests = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append((self.path, body))
            out = model.create_chat_completion(
                messages=body["messages"], temperature=body["temperature"], top_k=1,
                seed=body["seed"], max_tokens=body["max_tokens"])
            data = json.dumps(out).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1"
        result = analyze(quickstart_frame, model=f"openai:{url}#smollm2")
    finally:
        server.shutdown()
        server.server_close()
    assert result.model_status == f"ok: smollm2 at {url} (OpenAI-compatible)"
    assert result.hypotheses["narrative"][0]
    path, body = requests[0]
    assert path == "/v1/chat/completions" and body["model"] == "smollm2"
    assert body["temperature"] == 0 and body["seed"] == 42
    assert "query reformulation" in body["messages"][1]["content"]


@pytest.mark.parametrize(("model", "why"), [
    ("none", 'unavailable: model disabled (model = "none")'),
    ("/nonexistent/model.gguf", "unavailable: model file not found: /nonexistent/model.gguf"),
    ("gpt-5", "unavailable: unknown model setting 'gpt-5'"),
    ("openai:http://127.0.0.1:9/v1", "unavailable: http://127.0.0.1:9/v1/chat/completions: "),
])
def test_without_a_model_everything_but_the_narrative(quickstart_frame, model, why):
    result = analyze(quickstart_frame, model=model)
    assert result.model_status.startswith(why)
    assert len(result.clusters) == 1 and len(result.hypotheses) == 1
    assert result.hypotheses["narrative"].to_list() == [None]
    assert result.hypotheses["rule"].to_list() == ["retry_after_empty"]


def test_no_clusters_no_model_call():
    frame, _ = research_agent_runs(4, seed=3)
    assert analyze(frame, model="/nonexistent/model.gguf").model_status == (
        "unused: no clusters to narrate")
