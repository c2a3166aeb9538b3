"""Run the research agent over a batch of varied questions, traced one of two ways.

``run_batch()`` uses the endpoint it is given, else the one ``OPENAI_BASE_URL`` names,
else the bundled local model (a llama.cpp server it starts and stops on a free loopback
port). ``variant="halo"`` traces with the halo_nb SDK (spans go straight into this
process's store, or to ``collector_url`` when given); ``variant="openinference"`` traces
with plain OpenTelemetry and the OpenInference OpenAI instrumentor, exported over
OTLP/HTTP to the collector.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from .agent import AgentConfig, AgentRun, ResearchAgent
from .llm_server import Endpoint, LocalModelServer, endpoint_from_env
from .search import SimulatedSearch
from .tracing import HaloRecorder, OpenInferenceRecorder, Recorder

Variant = Literal["halo", "openinference"]

QUERIES: tuple[str, ...] = (
    "What is the population of Reykjavik in 2023?",
    "How many moons does Neptune have?",
    "What causes the aurora borealis?",
    "Which programming language was created by Guido van Rossum?",
    "What is the boiling point of water at the top of Mount Everest?",
    "Who won the 2018 Fields Medal for work on optimal transport?",
    "How deep is the Mariana Trench?",
    "When was the first transatlantic telegraph cable completed?",
    "What is the half-life of carbon-14?",
    "Which enzyme breaks down starch in human saliva?",
    "How long is the Great Wall of China?",
    "What is the tallest tree species in the world?",
    "Who painted The Garden of Earthly Delights?",
    "What is the speed of sound in seawater?",
    "How many bones are in the adult human hand?",
    "What is the main ingredient of traditional Japanese miso?",
    "Which country has the most active volcanoes?",
    "When did the Rosetta spacecraft land on a comet?",
    "What is the melting point of tungsten?",
    "Who proposed the theory of continental drift?",
)
DEFAULT_BATCH_SIZE = 16


@dataclass
class BatchReport:
    """The runs of one batch and how long it took."""

    variant: Variant
    reformulate_on_empty: bool
    model: str
    runs: list[AgentRun] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def trace_ids(self) -> list[str]:
        return [run.trace_id for run in self.runs if run.trace_id]

    @property
    def searches(self) -> int:
        return sum(len(run.searches) for run in self.runs)

    @property
    def empty_searches(self) -> int:
        return sum(1 for run in self.runs for s in run.searches if not s.result_count)

    @property
    def unanswered(self) -> int:
        """Runs whose every search came back empty."""
        return sum(1 for run in self.runs if not run.found_results)

    @property
    def errors(self) -> int:
        return sum(1 for run in self.runs if run.error)

    def summary(self) -> str:
        fix = "with reformulate_on_empty" if self.reformulate_on_empty else "baseline"
        failed = f", {self.errors} failed" if self.errors else ""
        return (f"{len(self.runs)} traces ({self.variant}, {fix}, model {self.model}) in "
                f"{self.seconds:.1f}s: {self.searches} searches, {self.empty_searches} empty, "
                f"{self.unanswered} runs found nothing{failed}")


def run_batch(queries: Sequence[str] | None = None, *, size: int = DEFAULT_BATCH_SIZE,
              variant: Variant = "halo", reformulate_on_empty: bool = False,
              endpoint: Endpoint | None = None, collector_url: str | None = None,
              search_seed: int = 7, model_seed: int = 42, max_tool_rounds: int = 3,
              ) -> BatchReport:
    """Run the agent once per question (the first ``size`` of ``QUERIES`` by default)."""
    if variant not in ("halo", "openinference"):
        raise ValueError(f"variant: expected 'halo' or 'openinference', got {variant!r}")
    questions = list(queries) if queries is not None else list(QUERIES[:size])
    if not questions:
        raise ValueError("queries: at least one question is needed")
    endpoint = endpoint or endpoint_from_env()
    with _model_endpoint(endpoint) as live:
        config = AgentConfig(model=live.model, protocol=live.protocol,
                             reformulate_on_empty=reformulate_on_empty,
                             max_tool_rounds=max_tool_rounds, seed=model_seed)
        report = BatchReport(variant, reformulate_on_empty, live.model)
        with _recorder(variant, collector_url) as recorder:
            agent = ResearchAgent(_client(live), config, SimulatedSearch(search_seed), recorder)
            started = time.perf_counter()
            report.runs = [agent.run(question) for question in questions]
            report.seconds = time.perf_counter() - started
    return report


@contextmanager
def _model_endpoint(endpoint: Endpoint | None) -> Iterator[Endpoint]:
    if endpoint is not None:
        yield endpoint
        return
    with LocalModelServer() as server:
        yield server.endpoint


def _client(endpoint: Endpoint):  # noqa: ANN202 - openai.OpenAI, imported lazily
    import openai

    return openai.OpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key, max_retries=1,
                         timeout=120.0)


def _collector_url(collector_url: str | None) -> str:
    if collector_url:
        return collector_url.rstrip("/")
    from halo_nb import runtime

    collector = runtime.collector()
    if collector is None or not collector.running:
        raise RuntimeError("the openinference variant exports to a collector: start one "
                           "(halo_nb.serve()) or pass collector_url")
    return collector.url


@contextmanager
def _recorder(variant: Variant, collector_url: str | None) -> Iterator[Recorder]:
    if variant == "halo":
        from halo_nb import sdk

        if collector_url:
            sdk.configure_export(endpoint=collector_url, service_name="research-agent")
        try:
            yield HaloRecorder()
        finally:
            sdk.flush()
        return
    with openinference_tracing(_collector_url(collector_url)) as tracer:
        yield OpenInferenceRecorder(tracer)


@contextmanager
def openinference_tracing(collector_url: str, service_name: str = "research-agent-openinference"
                          ) -> Iterator[object]:
    """A TracerProvider exporting OTLP/HTTP to ``collector_url``, with the OpenInference
    OpenAI instrumentor on it for the duration; yields a tracer for the agent's own spans.
    Everything is flushed to the collector before this returns."""
    from openinference.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = OTLPSpanExporter(endpoint=f"{collector_url.rstrip('/')}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield provider.get_tracer("halo_nb.examples.research_agent")
    finally:
        instrumentor.uninstrument()
        provider.force_flush()
        provider.shutdown()
