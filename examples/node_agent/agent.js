#!/usr/bin/env node
// The halo_nb sample research agent in Node.js, traced with the standard OpenTelemetry JS
// SDK and exported over OTLP/HTTP (protobuf) to the halo_nb collector.
//
// The loop: system prompt + user question -> LLM -> web_search -> LLM ... (at most three
// tool rounds) -> final answer. Spans carry OpenInference and OTel GenAI attributes:
//   agent root span (AGENT / invoke_agent) -> LLM spans (LLM / chat) and tool spans
//   (TOOL / execute_tool).
//
// LLM: with OPENAI_BASE_URL set (or --base-url), the OpenAI-compatible chat-completions
// endpoint there, via fetch. --protocol grammar (default) asks for one SEARCH:/ANSWER:
// line and sends a GBNF grammar (llama.cpp servers, such as the one the Python example
// starts for the bundled local model); --protocol tools uses native tool calling.
// Without an endpoint it runs a deterministic scripted responder (no model at all) that
// searches with the question's words, repeats the query after an empty result and answers
// once it has results (or after three searches): use it to try the
// tracing setup without a model.
import { trace, SpanStatusCode } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";
import { parseArgs } from "node:util";

import { broaden, simulatedSearch } from "./search.js";

export const QUERIES = [
  "What is the boiling point of water at the top of Mount Everest?",
  "Who won the 2018 Fields Medal for work on optimal transport?",
  "How many moons does Neptune have?",
  "What is the population of Reykjavik in 2023?",
  "Which programming language was created by Guido van Rossum?",
  "What causes the aurora borealis?",
];

const SYSTEM_PROMPT =
  "You are a research assistant. You have one tool, web_search, which searches the web.\n" +
  "Reply with exactly one line, in one of two forms:\n" +
  "SEARCH: <query>   to search the web\n" +
  "ANSWER: <answer>  to answer the user's question\n" +
  "Example: for 'Who wrote the novel Dracula?' reply SEARCH: Dracula novel author";
const NATIVE_SYSTEM_PROMPT =
  "You are a research assistant. Use the web_search tool to find information, " +
  "then answer the user's question in one or two sentences.";
const REFORMULATE_INSTRUCTION =
  "If a search returns no results, do not repeat it: search again with a different, " +
  "broader query that uses fewer words.";
const WEB_SEARCH_TOOL = {
  type: "function",
  function: {
    name: "web_search",
    description: "Search the web. Returns a list of results (title, url, snippet); may be empty.",
    parameters: {
      type: "object",
      properties: { query: { type: "string", description: "The search query." } },
      required: ["query"],
    },
  },
};

// The GBNF grammar for one reply: SEARCH when a search is required, ANSWER when tools are off.
function grammar(toolChoice) {
  return toolChoice === "required"
    ? "root ::= \"SEARCH: \" query-text\nquery-text ::= [a-zA-Z0-9] [a-zA-Z0-9 ,'-]{0,59}\n"
    : "root ::= \"ANSWER: \" answer-text\nanswer-text ::= [^\\n]{1,100}\n";
}

function parseReply(content) {
  const lines = (content ?? "").trim().split("\n");
  for (const [i, line] of lines.entries()) {
    const match = /^\s*(SEARCH|ANSWER)\s*:\s*(.*)$/i.exec(line);
    if (match) {
      if (match[1].toUpperCase() === "SEARCH") return { action: "search", text: match[2].trim() };
      return { action: "answer", text: [match[2], ...lines.slice(i + 1)].join("\n").trim() };
    }
  }
  return { action: "answer", text: lines.join("\n") };
}

// Tool-call arguments as an object. Small models put raw newlines and tabs inside JSON
// strings; as whitespace between tokens a space means the same.
function parseArguments(text) {
  return JSON.parse((text || "{}").replace(/[\u0000-\u001f]/g, " "));
}

// An OpenAI-compatible chat-completions endpoint, called with fetch.
class HttpModel {
  constructor({ baseUrl, apiKey, model, protocol, seed }) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.apiKey = apiKey;
    this.model = model;
    this.protocol = protocol;
    this.seed = seed;
    this.system = "openai";
  }

  async complete(messages, toolChoice) {
    const body = { model: this.model, messages, temperature: 0, seed: this.seed, max_tokens: 64 };
    if (this.protocol === "grammar") Object.assign(body, { tools: [WEB_SEARCH_TOOL], grammar: grammar(toolChoice) });
    // Naming the one tool forces a call of it (llama.cpp's server then constrains the
    // arguments to the tool's JSON schema).
    else if (toolChoice === "required") {
      Object.assign(body, { tools: [WEB_SEARCH_TOOL], tool_choice: { type: "function", function: { name: "web_search" } } });
    }
    const response = await fetch(`${this.baseUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${this.apiKey}` },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      throw new Error(`chat completions: HTTP ${response.status}: ${(await response.text()).slice(0, 300)}`);
    }
    const data = await response.json();
    const choice = data.choices[0];
    const message = choice.message;
    const call = message.tool_calls?.[0];
    const reply = call
      ? { action: "search", text: parseArguments(call.function.arguments).query, callId: call.id }
      : parseReply(message.content);
    return {
      reply,
      message,
      model: data.model ?? this.model,
      finishReason: choice.finish_reason,
      usage: data.usage ?? {},
    };
  }
}

// No endpoint: a deterministic scripted responder, so the tracing path runs without a model.
// Like the small local model, it repeats its query after an empty result whatever the prompt
// says (with --reformulate the tool wrapper searches again itself before asking it).
class ScriptedModel {
  constructor() {
    this.model = "scripted-responder";
    this.system = "scripted";
    this.protocol = "grammar";
  }

  async complete(messages, toolChoice) {
    const question = messages.find((m) => m.role === "user").content;
    const searches = messages.filter((m) => m.role === "assistant").map((m) => parseReply(m.content).text);
    const results = messages.filter((m) => m.role === "tool").map((m) => JSON.parse(m.content).results);
    const found = results.some((r) => r.length > 0);
    let content;
    if (toolChoice === "none") {
      content = found
        ? `ANSWER: According to ${results.flat()[0].url}, ${results.flat()[0].snippet}`
        : "ANSWER: I could not find this on the web.";
    } else if (searches.length === 0) {
      content = `SEARCH: ${question.replace(/[?.!]+$/, "")}`;
    } else {
      content = `SEARCH: ${searches.at(-1)}`;
    }
    const promptTokens = messages.reduce((n, m) => n + Math.ceil((m.content ?? "").length / 4), 0);
    const completionTokens = Math.ceil(content.length / 4);
    return {
      reply: parseReply(content),
      message: { role: "assistant", content },
      model: this.model,
      finishReason: "stop",
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens },
    };
  }
}

async function llmSpan(tracer, model, messages, toolChoice) {
  return tracer.startActiveSpan(`chat ${model.model}`, async (span) => {
    span.setAttributes({
      "openinference.span.kind": "LLM",
      "gen_ai.operation.name": "chat",
      "gen_ai.system": model.system,
      "gen_ai.request.model": model.model,
      "llm.model_name": model.model,
      "gen_ai.request.temperature": 0,
      "llm.tools": JSON.stringify([WEB_SEARCH_TOOL]),
      "halo.tool_choice": toolChoice,
      "input.value": JSON.stringify(messages),
      "input.mime_type": "application/json",
    });
    try {
      const out = await model.complete(messages, toolChoice);
      const usage = out.usage;
      span.setAttributes({
        "gen_ai.response.model": out.model,
        "gen_ai.response.finish_reasons": [out.finishReason ?? "stop"],
        "output.value": out.message.content ?? JSON.stringify(out.message.tool_calls ?? []),
        ...(usage.prompt_tokens != null && {
          "gen_ai.usage.input_tokens": usage.prompt_tokens,
          "llm.token_count.prompt": usage.prompt_tokens,
        }),
        ...(usage.completion_tokens != null && {
          "gen_ai.usage.output_tokens": usage.completion_tokens,
          "llm.token_count.completion": usage.completion_tokens,
        }),
      });
      span.setStatus({ code: SpanStatusCode.OK });
      return out;
    } catch (error) {
      span.recordException(error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: String(error.message ?? error) });
      throw error;
    } finally {
      span.end();
    }
  });
}

async function toolSpan(tracer, query, reformulated, options) {
  return tracer.startActiveSpan("execute_tool web_search", async (span) => {
    const args = JSON.stringify({ query });
    const results = simulatedSearch(query, options);
    const result = JSON.stringify({ results });
    span.setAttributes({
      "openinference.span.kind": "TOOL",
      "gen_ai.operation.name": "execute_tool",
      "gen_ai.tool.name": "web_search",
      "tool.name": "web_search",
      "gen_ai.tool.call.arguments": args,
      "gen_ai.tool.call.result": result,
      "input.value": args,
      "output.value": result,
      "halo.metadata.result_count": results.length,
      "halo.metadata.reformulated": reformulated,
    });
    span.setStatus({ code: SpanStatusCode.OK });
    span.end();
    return result;
  });
}

export async function runAgent(tracer, model, question, { reformulate = false, seed = 7, maxToolRounds = 3 } = {}) {
  return tracer.startActiveSpan("research_agent", async (root) => {
    root.setAttributes({
      "openinference.span.kind": "AGENT",
      "gen_ai.operation.name": "invoke_agent",
      "gen_ai.agent.name": "research_agent",
      "input.value": question,
      "halo.metadata.reformulate_on_empty": reformulate,
    });
    const system = model.protocol === "tools" ? NATIVE_SYSTEM_PROMPT : SYSTEM_PROMPT;
    const messages = [
      { role: "system", content: reformulate ? `${system}\n${REFORMULATE_INSTRUCTION}` : system },
      { role: "user", content: question },
    ];
    try {
      let found = false;
      let answer = null;
      let pending = null; // a search the tool wrapper issues itself (the reformulate fix)
      const tried = [];
      // Grounded answers: search until something is found (at most maxToolRounds), then answer.
      for (let round = 0; round <= maxToolRounds && answer === null; round += 1) {
        let query = pending;
        let callId = `call_${round + 1}`;
        if (query === null) {
          const toolChoice = found || tried.length >= maxToolRounds ? "none" : "required";
          const out = await llmSpan(tracer, model, messages, toolChoice);
          if (out.reply.action === "answer") {
            answer = out.reply.text;
            break;
          }
          query = out.reply.text;
          callId = out.reply.callId ?? callId;
        }
        if (model.protocol === "tools") {
          messages.push({ role: "assistant", content: "", tool_calls: [{ id: callId, type: "function", function: { name: "web_search", arguments: JSON.stringify({ query }) } }] });
        } else {
          messages.push({ role: "assistant", content: `SEARCH: ${query}` });
        }
        const result = await toolSpan(tracer, query, pending !== null, { seed });
        const empty = JSON.parse(result).results.length === 0;
        tried.push({ query, empty, reformulated: pending !== null });
        found ||= !empty;
        messages.push({ role: "tool", tool_call_id: callId, content: result });
        // The fix for the retry loop, in the tool wrapper: after an empty result, search again
        // at once with a broader query unlike every one tried.
        pending = reformulate && !found && tried.length < maxToolRounds
          ? broaden(query, tried.map((t) => t.query), question)
          : null;
      }
      root.setAttribute("output.value", answer ?? "");
      root.setStatus({ code: SpanStatusCode.OK });
      return { question, answer, searches: tried, traceId: root.spanContext().traceId };
    } catch (error) {
      root.recordException(error);
      root.setStatus({ code: SpanStatusCode.ERROR, message: String(error.message ?? error) });
      throw error;
    } finally {
      root.end();
    }
  });
}

async function main() {
  const { values } = parseArgs({
    options: {
      collector: { type: "string", default: process.env.HALO_COLLECTOR_URL ?? "http://127.0.0.1:4281" },
      "base-url": { type: "string", default: process.env.OPENAI_BASE_URL ?? "" },
      model: { type: "string", default: process.env.OPENAI_MODEL ?? "smollm2-135m-instruct" },
      protocol: { type: "string", default: process.env.HALO_AGENT_PROTOCOL ?? "grammar" },
      queries: { type: "string", default: String(QUERIES.length) },
      seed: { type: "string", default: "7" },
      reformulate: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    },
  });
  if (!["grammar", "tools"].includes(values.protocol)) {
    throw new Error(`--protocol: expected grammar or tools, got ${values.protocol}`);
  }
  const count = Number.parseInt(values.queries, 10);
  if (!(count >= 1)) throw new Error(`--queries: expected a positive integer, got ${values.queries}`);

  // The three lines that point an OpenTelemetry JS setup at halo_nb: an OTLP/HTTP exporter
  // to the collector's /v1/traces, a span processor, and a service name.
  const exporter = new OTLPTraceExporter({ url: `${values.collector.replace(/\/+$/, "")}/v1/traces` });
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: "node-research-agent" }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  provider.register();
  const tracer = trace.getTracer("halo-nb-node-agent", "0.1.0");

  const seed = Number.parseInt(values.seed, 10);
  const model = values["base-url"]
    ? new HttpModel({
        baseUrl: values["base-url"],
        apiKey: process.env.OPENAI_API_KEY ?? "not-needed",
        model: values.model,
        protocol: values.protocol,
        seed,
      })
    : new ScriptedModel();

  const runs = [];
  for (let i = 0; i < count; i += 1) {
    const question = QUERIES[i % QUERIES.length];
    try {
      runs.push(await runAgent(tracer, model, question, { reformulate: values.reformulate, seed }));
    } catch (error) {
      // The trace records the failure; the batch goes on with the next question.
      runs.push({ question, error: String(error.message ?? error) });
    }
  }
  await provider.forceFlush();
  await provider.shutdown();
  if (values.json) {
    process.stdout.write(JSON.stringify({ llm: model.system, runs }) + "\n");
  } else {
    for (const run of runs) {
      if (run.error) {
        process.stdout.write(`FAILED  ${run.question}\n    error: ${run.error}\n`);
        continue;
      }
      const searches = run.searches.map((s) => `${s.query}${s.empty ? " (empty)" : ""}`).join("; ");
      process.stdout.write(`${run.traceId}  ${run.question}\n    searches: ${searches}\n    answer: ${run.answer}\n`);
    }
  }
  if (runs.some((run) => run.error)) process.exitCode = 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error) => {
    process.stderr.write(`node-research-agent: ${error.message ?? error}\n`);
    process.exit(1);
  });
}
