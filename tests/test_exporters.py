"""Real OpenTelemetry exporters (Python and JS SDKs) sending agent traces to ``serve()``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import halo_nb

JS_PROJECT = Path(__file__).parent / "js"


def ids(span: trace.Span) -> tuple[str, str]:
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_python_otlp_exporter(halo_runtime, compression: Compression) -> None:
    collector = halo_nb.serve()
    provider = TracerProvider(resource=Resource.create({"service.name": "py-agent"}))
    provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=collector.traces_url, compression=compression)))
    tracer = provider.get_tracer("tests.python")
    with tracer.start_as_current_span("agent run", attributes={
            "openinference.span.kind": "AGENT", "input.value": "weather in Lisbon?"}) as root:
        with tracer.start_as_current_span("chat", kind=trace.SpanKind.CLIENT, attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 42, "gen_ai.usage.output_tokens": 7}) as llm:
            pass
        with tracer.start_as_current_span("get_weather", attributes={
                "openinference.span.kind": "TOOL", "tool.name": "get_weather",
                "input.value": '{"city": "Lisbon"}', "output.value": "sunny"}) as tool:
            with tracer.start_as_current_span("retrieve", attributes={
                    "traceloop.span.kind": "task", "halo.span.type": "retriever"}) as inner:
                inner.record_exception(RuntimeError("cache miss"))
                inner.set_status(trace.StatusCode.ERROR)
        root.set_attribute("output.value", "sunny, 24 C")
    provider.shutdown()

    trace_id, root_id = ids(root)
    frame = halo_nb.spans(trace_id)
    rows = {r["span_id"]: r for r in frame.to_dicts()}
    assert set(rows) == {ids(s)[1] for s in (root, llm, tool, inner)}
    assert rows[root_id]["parent_span_id"] is None
    assert rows[ids(llm)[1]]["parent_span_id"] == root_id
    assert rows[ids(inner)[1]]["parent_span_id"] == ids(tool)[1]
    kinds = {r["name"]: r["kind"] for r in rows.values()}
    assert kinds == {"agent run": "agent", "chat": "llm", "get_weather": "tool",
                     "retrieve": "chain"}
    chat = rows[ids(llm)[1]]
    assert (chat["model"], chat["tokens_in"], chat["tokens_out"], chat["tokens_total"]) == (
        "gpt-4o-mini", 42, 7, 49)
    assert chat["otel_kind"] == "client" and chat["service"] == "py-agent"
    weather = rows[ids(tool)[1]]
    assert (weather["tool_name"], weather["tool_args"], weather["tool_result"]) == (
        "get_weather", '{"city": "Lisbon"}', "sunny")
    failed = rows[ids(inner)[1]]
    assert (failed["status"], failed["status_message"]) == ("error", "cache miss")
    assert json.loads(failed["events"])[0]["name"] == "exception"
    summary = halo_nb.trace_table().row(0, named=True)
    assert (summary["name"], summary["span_count"], summary["status"], summary["ended"]) == (
        "agent run", 4, "error", True)
    assert summary["output"] == "sunny, 24 C"


def run_js_exporter(url: str, protocol: str, compression: str) -> list[dict]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (JS_PROJECT / "node_modules" / "@opentelemetry" / "sdk-trace-base").is_dir():
        pytest.skip(f"npm packages missing: run `npm ci --prefix {JS_PROJECT}`")
    done = subprocess.run(["node", str(JS_PROJECT / "export.mjs"), url, protocol, compression],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize(("protocol", "compression"), [
    ("proto", "none"), ("json", "none"), ("proto", "gzip"), ("json", "gzip")])
def test_js_sdk_exporter(halo_runtime, protocol: str, compression: str) -> None:
    collector = halo_nb.serve()
    sent = run_js_exporter(collector.traces_url, protocol, compression)
    assert len(sent) == 10
    frame = halo_nb.spans()
    expected = pl.DataFrame(sent, schema={"trace_id": pl.String, "span_id": pl.String,
                                          "parent_span_id": pl.String, "name": pl.String})
    got = frame.select(expected.columns)
    assert got.sort("span_id").equals(expected.sort("span_id"))
    assert set(frame["service"]) == {f"js-agent-{protocol}"}
    by_name = frame.group_by("name").agg(pl.col("kind").unique(), pl.len())
    kinds = {r["name"]: r["kind"] for r in by_name.to_dicts()}
    assert kinds == {"agent run 0": ["agent"], "agent run 1": ["agent"], "chat gpt-4o": ["llm"],
                     "execute_tool search_flights": ["tool"], "GET /flights": ["unknown"]}
    llm = frame.filter(pl.col("name") == "chat gpt-4o").sort("tokens_total")
    assert llm["tokens_total"].to_list() == [150, 151, 250, 250]
    assert set(llm["model"]) == {"gpt-4o"} and set(llm["otel_kind"]) == {"client"}
    tools = frame.filter(pl.col("kind") == "tool")
    assert set(tools["tool_name"]) == {"search_flights"}
    assert [json.loads(a) for a in tools["tool_args"]] == [{"from": "BER", "to": "LIS"}] * 2
    assert set(tools["tool_result"]) == {"[]"}
    http = frame.filter(pl.col("name") == "GET /flights").row(0, named=True)
    assert (http["status"], http["status_message"]) == ("error", "upstream unavailable")
    assert json.loads(http["attributes"]) == {"http.status_code": 503, "retry.attempts": [1, 2, 3]}
    table = halo_nb.trace_table()
    assert table.height == 2 and set(table["status"]) == {"error"} and all(table["ended"])
    assert set(table["output"]) == {"no flights found"}
    assert collector.counts.spans_rejected == 0
