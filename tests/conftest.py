"""Shared fixtures. Append new fixtures below; do not rewrite the ones others use."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import halo_nb
from halo_nb import runtime

if TYPE_CHECKING:
    from halo_nb.ingest.server import Collector
    from halo_nb.storage.store import SpanStore


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tiers (scripts/test.sh): a test that needs the local model server, directly or
    through a fixture, is in the model tier; tests/browser/ is the browser tier."""
    for item in items:
        if "local_model_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.model)
        if "browser" in item.path.parent.parts[-1:]:
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def halo_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh process-wide halo_nb state: no HALO_* variables, no settings file in reach
    (the working directory is ``tmp_path``), storage under ``tmp_path/store``, collector
    port 0. Yields the storage path; stops everything afterwards."""
    for key in list(os.environ):
        if key.startswith("HALO_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    runtime.reset()
    storage = tmp_path / "store"
    halo_nb.configure(storage_path=storage, port=0)
    yield storage
    halo_nb.sdk.flush()  # SDK spans still buffered belong in this test's store
    runtime.reset()


# ---- a support agent traced with the real OpenTelemetry SDK and OTLP/HTTP exporter -----------


def run_support_agent(tracer, *, question: str = "How do I reset my password?",
                      search_result: str = "3 articles: reset-password, 2fa, sso",
                      extra_search: bool = False, fail_search: bool = False) -> str:
    """One agent run (agent → plan LLM → search tool [→ web search] → answer LLM) on an
    OpenTelemetry tracer, with OpenInference attributes of every OTLP value type.
    Returns the trace id (hex)."""
    import json as _json

    from opentelemetry.trace import SpanKind, Status, StatusCode

    llm = {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
           "llm.invocation_parameters": '{"temperature": 0.2}', "llm.temperature": 0.2,
           "llm.streaming": False, "tag.tags": ["support", "prod"], "llm.stop_ids": [7, 42],
           "llm.top_p": [0.5, 1.0], "llm.flags": [True, False]}
    with tracer.start_as_current_span(
            "support-agent", kind=SpanKind.SERVER,
            attributes={"openinference.span.kind": "AGENT", "input.value": question,
                        "session.id": "s-1"}) as root:
        with tracer.start_as_current_span("plan", attributes={
                **llm, "llm.token_count.prompt": 120, "llm.token_count.completion": 12,
                "output.value": "search the knowledge base"}):
            pass
        with tracer.start_as_current_span("search_kb", kind=SpanKind.CLIENT, attributes={
                "openinference.span.kind": "TOOL", "tool.name": "search_kb",
                "input.value": _json.dumps({"query": question}),
                "output.value": search_result}) as search:
            search.add_event("retrieved", {"count": 3, "ids": ["a1", "b2"], "score": 0.87})
            if fail_search:
                search.record_exception(TimeoutError("knowledge base timed out"))
                search.set_status(Status(StatusCode.ERROR, "knowledge base timed out"))
        if extra_search:
            with tracer.start_as_current_span("search_web", kind=SpanKind.CLIENT, attributes={
                    "openinference.span.kind": "TOOL", "tool.name": "search_web",
                    "input.value": _json.dumps({"query": question}),
                    "output.value": "1 page: help.example.com/reset"}):
                pass
        with tracer.start_as_current_span("answer", attributes={
                **llm, "llm.token_count.prompt": 410, "llm.token_count.completion": 64,
                "output.value": "Open Settings → Security → Reset password."}) as answer:
            answer.set_status(Status(StatusCode.OK))
        root.set_attribute("output.value", "Open Settings → Security → Reset password.")
    return format(root.get_span_context().trace_id, "032x")


@pytest.fixture
def send_agent_runs():
    """``send(base_url, runs)``: run the support agent once per keyword dict in ``runs``
    under a real TracerProvider whose OTLPSpanExporter (protobuf over HTTP) posts to
    ``base_url``/v1/traces; returns the trace ids once every span is delivered."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    def send(base_url: str, runs: list[dict]) -> list[str]:
        provider = TracerProvider(resource=Resource.create(
            {"service.name": "support-bot", "deployment.environment": "test"}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{base_url}/v1/traces", timeout=10)))
        tracer = provider.get_tracer("support-bot.agent", "1.4.0")
        try:
            return [run_support_agent(tracer, **run) for run in runs]
        finally:
            provider.shutdown()

    return send


@pytest.fixture
def memory_store() -> Iterator[SpanStore]:
    """An in-memory SpanStore, closed afterwards."""
    from halo_nb.storage.store import SpanStore

    store = SpanStore(None)
    yield store
    store.close()


@pytest.fixture
def collector(memory_store: SpanStore) -> Iterator[Collector]:
    """A running Collector on a free loopback port feeding ``memory_store``."""
    from halo_nb.ingest.server import Collector

    running = Collector(memory_store, host="127.0.0.1", port=0).start()
    yield running
    running.stop()


# ---- the bundled local model behind an OpenAI-compatible server (examples/research_agent) ----


@pytest.fixture(scope="session")
def local_model_server():
    """One llama.cpp server with the bundled SmolLM2 GGUF on a free loopback port, shared
    by every model test of the session (starting it takes a few seconds)."""
    from halo_nb.examples.research_agent import LocalModelServer

    with LocalModelServer() as server:
        yield server


AGENT_BATCH_SIZE = 10


class AgentBatch:
    """One batch of the sample agent: its report, its spans and its exported snapshot."""

    def __init__(self, report, spans, snapshot: Path) -> None:
        self.report = report
        self.spans = spans
        self.snapshot = snapshot


@pytest.fixture(scope="session")
def agent_batches(local_model_server, tmp_path_factory) -> dict[str, AgentBatch]:
    """The sample research agent's baseline batch and its fixed batch
    (``reformulate_on_empty``), the first AGENT_BATCH_SIZE questions each, on the local
    model and traced with the halo SDK: ``{"baseline": AgentBatch, "fixed": AgentBatch}``.
    Run once per session: the agent tests, ``halo check`` and the notebooks share them."""
    import polars as pl

    from halo_nb.examples.research_agent import run_batch

    folder = tmp_path_factory.mktemp("agent-batches")
    batches: dict[str, AgentBatch] = {}
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith(("HALO_", "OPENAI_", "OTEL_")):
                patch.delenv(key)
        patch.chdir(folder)
        runtime.reset()
        halo_nb.configure(persist=False, port=0)
        try:
            for name, fix in (("baseline", False), ("fixed", True)):
                report = run_batch(size=AGENT_BATCH_SIZE, endpoint=local_model_server.endpoint,
                                   reformulate_on_empty=fix)
                spans = halo_nb.spans().filter(pl.col("trace_id").is_in(report.trace_ids))
                snapshot = halo_nb.export_snapshot(report.trace_ids, folder / f"{name}.json")
                batches[name] = AgentBatch(report, spans, snapshot)
        finally:
            halo_nb.sdk.flush()
            runtime.reset()
    return batches


@pytest.fixture
def sdk_in_process(halo_runtime: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The SDK delivering in-process, no OTLP variables, and no trace left open or current
    afterwards (the SDK and blame tests use it for every test)."""
    import warnings

    from opentelemetry import context as otel_context
    from opentelemetry.context import Context

    for variable in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(variable, raising=False)
    halo_nb.sdk.configure_export()
    token = otel_context.attach(Context())
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for trace in halo_nb.sdk.open_traces():
            halo_nb.end_trace(trace)
    otel_context.detach(token)
    halo_nb.sdk.configure_export()
