"""What the browser tests share: the span corpus they send, how they send it, and how
they find a view in a notebook cell."""

from __future__ import annotations

import urllib.request

import polars as pl

from halo_nb.interchange.otlp_encode import encode_request, request_to_protobuf

from .corpus import agent_traces, wide_trace

TRACES = 30
WIDE_SPANS = 3_000
CORPUS = pl.concat([agent_traces(TRACES), wide_trace(WIDE_SPANS)])
ERROR_TRACES = CORPUS.filter(pl.col("status") == "error")["trace_id"].n_unique()


def post_otlp(port: int, spans: pl.DataFrame) -> None:
    body = request_to_protobuf(encode_request(spans))
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/traces", data=body,
                                     headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def send_live_trace(port: int) -> None:
    """One trace from the real OpenTelemetry SDK and OTLP/HTTP exporter."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    provider = TracerProvider(resource=Resource.create({"service.name": "live-service"}))
    provider.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces")))
    tracer = provider.get_tracer("browser-test")
    with tracer.start_as_current_span("live-probe", attributes={
            "openinference.span.kind": "AGENT", "input.value": "probe question"}):
        with tracer.start_as_current_span("probe-tool", attributes={
                "openinference.span.kind": "TOOL", "tool.name": "probe"}) as child:
            child.set_status(Status(StatusCode.ERROR, "probe failed"))
    provider.shutdown()


def widget(cell: object) -> object:
    errors = cell.locator("[data-mime-type='application/vnd.jupyter.stderr']")
    root = cell.locator(".halo-root")
    root.or_(errors).first.wait_for(timeout=30_000)
    assert errors.count() == 0, errors.all_inner_texts()
    return root


def visible_names(root: object, column: str) -> list[str]:
    cells = root.locator(f".halo-traces-body .halo-row:visible [data-col={column}]")
    return cells.all_inner_texts()
