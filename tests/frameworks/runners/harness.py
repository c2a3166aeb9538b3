"""What every Python runner shares: its command line and an OTel tracer provider that
exports over OTLP/HTTP (protobuf) to the recorder's sink."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

MODEL = "gpt-4o-mini"
SYSTEM_PROMPT = "You are a travel assistant. Use the tools when they help."


@dataclass(frozen=True)
class RunnerArgs:
    base_url: str
    otlp: str
    scenario: str
    questions: list[str]


def parse_args() -> RunnerArgs:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True, help="the mock model's base URL")
    parser.add_argument("--otlp", required=True, help="OTLP/HTTP traces endpoint")
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--questions", required=True, help="JSON list, one run each")
    ns = parser.parse_args()
    return RunnerArgs(ns.base_url, ns.otlp, ns.scenario, json.loads(ns.questions))


def tracer_provider(service: str, endpoint: str, *, set_global: bool = True) -> TracerProvider:
    """A provider exporting every span as it ends (SimpleSpanProcessor)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    if set_global:
        trace.set_tracer_provider(provider)
    return provider
