// Sends agent traces to an OTLP/HTTP endpoint with the real OpenTelemetry JS SDK and
// prints what it sent (ids, parents, names) as JSON, for tests/test_exporters.py.
//
//   node export.mjs <traces url> <proto|json> [gzip|none] [traces]
import { context, trace, SpanStatusCode, SpanKind } from "@opentelemetry/api";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { OTLPTraceExporter as ProtoExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { OTLPTraceExporter as JsonExporter } from "@opentelemetry/exporter-trace-otlp-http";

const [url, protocol, compression = "none", traceCount = "2"] = process.argv.slice(2);
if (!url || !["proto", "json"].includes(protocol)) {
  console.error("usage: node export.mjs <traces url> <proto|json> [gzip|none] [traces]");
  process.exit(2);
}

const Exporter = protocol === "proto" ? ProtoExporter : JsonExporter;
const exporter = new Exporter({ url, compression, timeoutMillis: 10000 });
const failures = [];
const watched = {
  export(spans, done) {
    exporter.export(spans, (result) => {
      if (result.code !== 0) failures.push(String(result.error));
      done(result);
    });
  },
  shutdown: () => exporter.shutdown(),
  forceFlush: () => exporter.forceFlush(),
};
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ "service.name": `js-agent-${protocol}` }),
  spanProcessors: [new BatchSpanProcessor(watched, { maxExportBatchSize: 4 })],
});
const tracer = provider.getTracer("halo-js-test", "1.0.0");
const sent = [];

function start(name, parent, attributes, kind = SpanKind.INTERNAL) {
  const ctx = parent ? trace.setSpan(context.active(), parent) : context.active();
  const span = tracer.startSpan(name, { attributes, kind }, ctx);
  const sc = span.spanContext();
  sent.push({
    trace_id: sc.traceId,
    span_id: sc.spanId,
    parent_span_id: parent ? parent.spanContext().spanId : null,
    name,
  });
  return span;
}

for (let t = 0; t < Number(traceCount); t++) {
  const root = start(`agent run ${t}`, null, {
    "openinference.span.kind": "AGENT",
    "input.value": `book a flight number ${t}`,
  });
  const llm = start("chat gpt-4o", root, {
    "openinference.span.kind": "LLM",
    "llm.model_name": "gpt-4o",
    "llm.token_count.prompt": 120 + t,
    "llm.token_count.completion": 30,
    "output.value": "calling search_flights",
  }, SpanKind.CLIENT);
  llm.end();
  const tool = start("execute_tool search_flights", root, {
    "gen_ai.operation.name": "execute_tool",
    "gen_ai.tool.name": "search_flights",
    "gen_ai.tool.call.arguments": JSON.stringify({ from: "BER", to: "LIS" }),
    "gen_ai.tool.call.result": "[]",
  });
  const http = start("GET /flights", tool, { "http.status_code": 503, "retry.attempts": [1, 2, 3] },
    SpanKind.CLIENT);
  http.recordException(new Error("upstream unavailable"));
  http.setStatus({ code: SpanStatusCode.ERROR });
  http.end();
  tool.end();
  const answer = start("chat gpt-4o", root, {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 200,
    "gen_ai.usage.output_tokens": 50,
  }, SpanKind.CLIENT);
  answer.end();
  root.setAttribute("output.value", "no flights found");
  root.setStatus({ code: SpanStatusCode.OK });
  root.end();
}

await provider.forceFlush();
await provider.shutdown();
if (failures.length) {
  console.error(`export failed: ${failures.join("; ")}`);
  process.exit(1);
}
console.log(JSON.stringify(sent));
