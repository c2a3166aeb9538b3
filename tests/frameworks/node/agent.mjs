// A hand-written tool loop on the openai npm client, traced by
// @arizeai/openinference-instrumentation-openai (LLM spans) and @arizeai/openinference-core's
// traceAgent / traceTool wrappers, on @opentelemetry/sdk-node exporting OTLP/HTTP protobuf.
// Usage: node agent.mjs --base-url URL --otlp URL --scenario NAME --questions JSON
import { parseArgs } from "node:util";
import { traceAgent, traceTool } from "@arizeai/openinference-core";
import { OpenAIInstrumentation } from "@arizeai/openinference-instrumentation-openai";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { SimpleSpanProcessor } from "@opentelemetry/sdk-trace";
import OpenAI from "openai";

const { values: args } = parseArgs({
  options: { "base-url": { type: "string" }, otlp: { type: "string" },
             scenario: { type: "string" }, questions: { type: "string" } },
});
const sdk = new NodeSDK({
  resource: resourceFromAttributes({ "service.name": "node-openinference-agent" }),
  spanProcessors: [new SimpleSpanProcessor({ exporter: new OTLPTraceExporter({ url: args.otlp }) })],
});
sdk.start();
new OpenAIInstrumentation().manuallyInstrument(OpenAI);

const MODEL = "gpt-4o-mini";
const SYSTEM_PROMPT = "You are a travel assistant. Use the tools when they help.";
const FORECASTS = { Paris: "light rain, 14 C", Tokyo: "sunny, 22 C", Lima: "overcast, 19 C",
  Oslo: "snow showers, -2 C", Cairo: "clear, 31 C", Rome: "sunny, 20 C", Berlin: "cloudy, 11 C",
  Madrid: "clear, 23 C", Vienna: "drizzle, 12 C", Prague: "cloudy, 10 C", Lisbon: "sunny, 21 C" };
const GUIDE = Object.keys(FORECASTS).map((c) => `${c} museum: open 9:00-18:00, free on Sundays`);
const NOTES = { "notes/packing.txt": "umbrella, charger, passport" };
const TOOLS = {
  get_weather: [({ city }) => `${city}: ${FORECASTS[city] ?? "mild, 18 C"}`, "city",
    "Tomorrow's forecast for a city."],
  search_docs: [({ query }) => GUIDE.filter((doc) => query.toLowerCase().split(/\s+/)
    .every((word) => doc.toLowerCase().includes(word))), "query",
    "Guide entries that contain every word of the query."],
  think: [() => null, "thought", "A scratchpad: nothing comes back, by design."],
  read_file: [({ path }) => {
    if (!(path in NOTES)) throw new Error(`EACCES: permission denied, open '${path}'`);
    return NOTES[path];
  }, "path", "A file from the user's travel notes."],
};
const schemas = Object.entries(TOOLS).map(([name, [, param, description]]) => ({
  type: "function",
  function: { name, description, parameters: { type: "object",
    properties: { [param]: { type: "string" } }, required: [param], additionalProperties: false } },
}));
const traced = Object.fromEntries(Object.entries(TOOLS).map(
  ([name, [fn]]) => [name, traceTool(async (input) => fn(input), { name })]));
const client = new OpenAI({ baseURL: args["base-url"], apiKey: "sk-local-mock" });

async function callTool(name, argumentsText) {
  if (!(name in traced)) return `Error: unknown tool '${name}'`;
  try {
    return JSON.stringify(await traced[name](JSON.parse(argumentsText)));
  } catch (err) {
    return `Error: ${err.message}`;
  }
}

const travelAgent = traceAgent(async (question) => {
  const messages = [{ role: "system", content: SYSTEM_PROMPT }, { role: "user", content: question }];
  for (let step = 0; step < 10; step++) {
    const reply = await client.chat.completions.create({ model: MODEL, messages, tools: schemas });
    const message = reply.choices[0].message;
    messages.push(message);
    if (!message.tool_calls?.length) return message.content ?? "";
    for (const call of message.tool_calls) {
      messages.push({ role: "tool", tool_call_id: call.id,
        content: await callTool(call.function.name, call.function.arguments) });
    }
  }
  return "I ran out of steps.";
}, { name: "travel_agent" });

for (const question of JSON.parse(args.questions)) await travelAgent(question);
await sdk.shutdown();
