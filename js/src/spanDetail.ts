/** The span detail pane's content: facts, findings, the decisive-span verdict, LLM messages
 * as chat turns, tool calls, JSON pretty-printed (with a raw toggle), events, and the
 * attributes not already shown above. Every value block has a copy button. */
import { chatTurns, parseJson, type Turn } from "./messages";
import { expandable, fmtDuration, fmtInt, h, severityBadge, statusBadge } from "./util";

export interface Decisive {
  score: number;
  agent: string | null;
  reasons: string[];
}

export interface DetailContext {
  /** Start of the span relative to the trace, in ms. */
  start: number;
  decisive: Decisive | null;
  onZoom: () => void;
}

/** Writes `text` to the clipboard (the async API where the page allows it, else a hidden
 * textarea and execCommand, which also works in a file:// report). */
export async function copyText(text: string): Promise<boolean> {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through to the textarea route
  }
  const area = h("textarea", { style: { position: "fixed", opacity: "0", top: "0", left: "0" } });
  area.value = text;
  document.body.appendChild(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  return ok;
}

export function copyButton(text: string, label = "Copy"): HTMLElement {
  const button = h("button", { class: "halo-copy", type: "button", title: "Copy to the clipboard" }, label);
  button.addEventListener("click", async (event) => {
    event.stopPropagation();
    const ok = await copyText(text);
    button.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => { button.textContent = label; }, 1200);
  });
  return button;
}

/** A value: JSON pretty-printed with a Raw/Formatted toggle, else text; long values cut. */
export function valueBlock(value: string): HTMLElement {
  const parsed = parseJson(value);
  const tools = h("span", { class: "halo-value-tools" });
  const body = h("div", { class: "halo-value-body" });
  const wrap = h("div", { class: "halo-value" }, tools, body);
  if (parsed === undefined) {
    body.appendChild(expandable(value));
    tools.appendChild(copyButton(value));
    return wrap;
  }
  const pretty = JSON.stringify(parsed, null, 2);
  let raw = false;
  const toggle = h("button", { class: "halo-copy", type: "button", title: "Switch between formatted and raw JSON" });
  const paint = () => {
    body.replaceChildren(expandable(raw ? value : pretty, raw ? 600 : 1200));
    toggle.textContent = raw ? "Formatted" : "Raw";
  };
  toggle.addEventListener("click", () => {
    raw = !raw;
    paint();
  });
  paint();
  tools.append(toggle, copyButton(value));
  return wrap;
}

function chat(turns: Turn[]): HTMLElement {
  return h("div", { class: "halo-chat" }, ...turns.map((turn) =>
    h("div", { class: `halo-turn halo-turn-${turn.role.replace(/[^a-z_]/gi, "")}`, "data-role": turn.role },
      h("div", { class: "halo-turn-role" }, turn.role,
        turn.callId ? h("span", { class: "halo-dim" }, ` · answers ${turn.callId}`) : null),
      turn.text ? expandable(turn.text, 800) : turn.calls.length ? null : h("div", { class: "halo-dim" }, "(empty)"),
      ...turn.calls.map((call) => h("div", { class: "halo-call" },
        h("span", { class: "halo-call-name" }, `→ ${call.name}`), valueBlock(call.arguments))))));
}

/** Same value, ignoring JSON formatting. */
function sameValue(a: string | null | undefined, b: string | null | undefined): boolean {
  if (!a || !b) return false;
  if (a === b) return true;
  const x = parseJson(a), y = parseJson(b);
  return x !== undefined && y !== undefined && JSON.stringify(x) === JSON.stringify(y);
}

function isEmptyResult(value: string | null | undefined): boolean {
  const text = (value ?? "").trim();
  return text === "" || text === "[]" || text === "{}" || text === "null" || text === '""';
}

function section(label: string, body: Node, extra: Node | null = null): HTMLElement {
  return h("details", { class: "halo-section", open: true, "data-section": label },
    h("summary", null, label, extra), body);
}

/** An attribute key that wraps only after its dots and underscores, never mid-word. */
function breakableKey(key: string): Node[] {
  const nodes: Node[] = [];
  for (const part of key.split(/(?<=[._])/)) nodes.push(document.createTextNode(part), h("wbr"));
  return nodes;
}

function attributeTable(attributes: Record<string, unknown>, hidden: Set<string>): HTMLElement {
  const table = h("table", { class: "halo-kv halo-attrs" });
  for (const key of Object.keys(attributes).sort()) {
    if (hidden.has(key)) continue;
    const value = attributes[key];
    const text = typeof value === "string" ? value : JSON.stringify(value);
    table.appendChild(h("tr", null, h("th", null, ...breakableKey(key)), h("td", null, expandable(text, 300))));
  }
  return table;
}

function eventList(events: any[]): HTMLElement {
  return h("ul", { class: "halo-list" }, ...events.map((e) =>
    h("li", null, h("b", null, e.name), e.offset_ms != null ? h("span", { class: "halo-dim" }, ` +${fmtDuration(e.offset_ms)}`) : null,
      Object.keys(e.attributes ?? {}).length ? attributeTable(e.attributes, new Set()) : null)));
}

/** Attribute keys whose values the pane already shows above (so they are not repeated). */
function shownAttributes(attributes: Record<string, unknown>, shown: (string | null | undefined)[],
                         chatShown: boolean): Set<string> {
  const hidden = new Set<string>();
  for (const [key, value] of Object.entries(attributes)) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    if (shown.some((s) => sameValue(text, s))) hidden.add(key);
    else if (chatShown && /^(llm\.(input|output)_messages\.|gen_ai\.(input|output)\.messages|gen_ai\.(prompt|completion)\.)/.test(key)) {
      hidden.add(key);
    }
  }
  return hidden;
}

export function renderDetail(d: any, ctx: DetailContext): HTMLElement[] {
  const zoomTo = h("button", { class: "halo-button", type: "button", onclick: ctx.onZoom }, "Zoom to span");
  const out: HTMLElement[] = [
    h("div", { class: "halo-detail-head" },
      h("span", { class: "halo-title halo-wrap" }, d.name), h("span", { class: "halo-grow" }),
      copyButton(d.span_id, "Copy id"), zoomTo),
  ];
  if (d.status === "error") out.push(h("div", { class: "halo-error-text" }, `Error: ${d.status_message || "status error"}`));
  if (ctx.decisive) {
    out.push(h("div", { class: "halo-decisive-box" },
      h("div", { class: "halo-title" }, `◆ Decisive span of this failure (score ${ctx.decisive.score.toFixed(2)})`),
      ctx.decisive.agent ? h("div", { class: "halo-dim" }, `agent: ${ctx.decisive.agent}`) : null,
      ctx.decisive.reasons.length ? h("ul", { class: "halo-list" }, ...ctx.decisive.reasons.map((r) => h("li", null, r))) : null));
  }
  const facts: [string, unknown][] = [
    ["kind", d.kind], ["status", d.status], ["span id", d.span_id], ["parent", d.parent_span_id],
    ["start", `+${fmtDuration(ctx.start)}`], ["duration", fmtDuration(d.duration_ms ?? NaN)],
    ["service", d.service], ["model", d.model], ["tool", d.tool_name], ["finish reason", d.finish_reason],
    ["tokens", d.tokens_total == null ? null : fmtInt(d.tokens_total) +
      (d.tokens_in != null || d.tokens_out != null ? ` (in ${fmtInt(d.tokens_in ?? NaN) || "–"}, out ${fmtInt(d.tokens_out ?? NaN) || "–"})` : "")],
  ];
  const table = h("table", { class: "halo-kv" });
  for (const [key, value] of facts) {
    if (value === null || value === undefined || value === "") continue;
    table.appendChild(h("tr", null, h("th", null, key),
      h("td", null, key === "status" ? statusBadge(String(value)) : String(value))));
  }
  out.push(table);
  const findings = (d.findings ?? []) as any[];
  if (findings.length) {
    out.push(section(`Findings (${findings.length})`, h("ul", { class: "halo-list" },
      ...findings.map((f) => h("li", null, severityBadge(f.severity), ` ${f.detector}: ${f.message}`)))));
  }
  const shown: (string | null | undefined)[] = [d.status_message];
  let chatShown = false;
  const inputTurns = d.kind === "llm" ? chatTurns(d.input) : null;
  const outputTurns = d.kind === "llm" ? chatTurns(d.output) : null;
  if (d.tool_name || d.tool_args || d.tool_result != null) {
    if (d.tool_args) {
      out.push(section("Tool call", h("div", null,
        h("div", { class: "halo-call-name" }, `→ ${d.tool_name ?? d.name}`), valueBlock(d.tool_args))));
      shown.push(d.tool_args);
    }
    if (d.tool_result != null) {
      out.push(section("Tool result", isEmptyResult(d.tool_result)
        ? h("div", { class: "halo-empty-result" }, `empty result: ${JSON.stringify(d.tool_result)}`)
        : valueBlock(d.tool_result)));
      shown.push(d.tool_result);
    }
  }
  if (d.input && !shown.some((s) => sameValue(d.input, s))) {
    out.push(inputTurns ? section(`Messages (${inputTurns.length})`, chat(inputTurns), copyButton(d.input))
      : section("Input", valueBlock(d.input)));
    chatShown ||= !!inputTurns;
    shown.push(d.input);
  }
  if (d.output && !shown.some((s) => sameValue(d.output, s))) {
    out.push(outputTurns ? section("Response", chat(outputTurns), copyButton(d.output))
      : section("Output", valueBlock(d.output)));
    chatShown ||= !!outputTurns;
    shown.push(d.output);
  }
  if ((d.annotations ?? []).length) out.push(section(`Annotations (${d.annotations.length})`, eventList(d.annotations)));
  if ((d.events ?? []).length) out.push(section(`Events (${d.events.length})`, eventList(d.events)));
  const attributes = (d.attributes ?? {}) as Record<string, unknown>;
  const hidden = shownAttributes(attributes, shown, chatShown);
  const count = Object.keys(attributes).length;
  out.push(section(`Attributes (${count - hidden.size})`, attributeTable(attributes, hidden),
    hidden.size ? h("span", { class: "halo-dim halo-normal" }, ` · ${hidden.size} shown above`) : null));
  return out;
}
