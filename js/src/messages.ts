/** LLM input/output values read as chat turns: OpenAI-style message lists (or a request
 * body holding one), OpenAI responses, and the GenAI convention's messages with parts. */

export interface ToolCall {
  name: string;
  arguments: string;
  id?: string;
}

export interface Turn {
  role: string;
  text: string;
  calls: ToolCall[];
  /** The call a tool turn answers. */
  callId?: string;
}

function asText(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map(partText).filter(Boolean).join("\n");
  return JSON.stringify(value, null, 2);
}

function partText(part: any): string {
  if (typeof part === "string") return part;
  if (part && typeof part === "object") {
    if (typeof part.text === "string") return part.text;
    if (typeof part.content === "string") return part.content;
    if (part.type === "image_url" || part.type === "image") return "[image]";
  }
  return "";
}

function callOf(raw: any): ToolCall | null {
  if (!raw || typeof raw !== "object") return null;
  const fn = raw.function && typeof raw.function === "object" ? raw.function : raw;
  if (typeof fn.name !== "string") return null;
  const args = fn.arguments ?? fn.input ?? fn.args;
  return { name: fn.name, arguments: typeof args === "string" ? args : JSON.stringify(args ?? {}), id: raw.id };
}

/** One message object → a turn, or null when it is not shaped like one. */
function turnOf(message: any): Turn | null {
  if (!message || typeof message !== "object" || Array.isArray(message)) return null;
  const role = typeof message.role === "string" ? message.role : null;
  if (!role) return null;
  const calls: ToolCall[] = [];
  let text = "";
  let callId: string | undefined = message.tool_call_id;
  if (Array.isArray(message.parts)) {
    // GenAI semantic conventions: typed parts.
    const texts: string[] = [];
    for (const part of message.parts) {
      if (part?.type === "tool_call") {
        const call = callOf(part);
        if (call) calls.push(call);
      } else if (part?.type === "tool_call_response") {
        callId = part.id ?? callId;
        texts.push(asText(part.response ?? part.result));
      } else {
        texts.push(partText(part));
      }
    }
    text = texts.filter(Boolean).join("\n");
  } else {
    text = asText(message.content);
    for (const raw of message.tool_calls ?? []) {
      const call = callOf(raw);
      if (call) calls.push(call);
    }
    if (message.function_call) {
      const call = callOf(message.function_call);
      if (call) calls.push(call);
    }
  }
  return { role, text, calls, callId };
}

function turnsOf(list: unknown): Turn[] | null {
  if (!Array.isArray(list) || list.length === 0) return null;
  const turns: Turn[] = [];
  for (const item of list) {
    const turn = turnOf(item);
    if (!turn) return null;
    turns.push(turn);
  }
  return turns;
}

export function parseJson(value: string | null | undefined): unknown {
  if (!value) return undefined;
  const text = value.trim();
  if (!(text.startsWith("{") || text.startsWith("["))) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The chat turns in an LLM span's input or output, or null when the value is not a
 * conversation (plain text, other JSON). A bare list of tool calls is an assistant turn. */
export function chatTurns(value: string | null | undefined): Turn[] | null {
  const data = parseJson(value) as any;
  if (data === undefined) return null;
  const direct = turnsOf(data);
  if (direct) return direct;
  if (Array.isArray(data)) {
    const calls = data.map(callOf);
    if (calls.length && calls.every(Boolean)) return [{ role: "assistant", text: "", calls: calls as ToolCall[] }];
    return null;
  }
  if (data && typeof data === "object") {
    const nested = turnsOf(data.messages) ?? turnsOf(data.input);
    if (nested) return nested;
    if (Array.isArray(data.choices)) {
      const turns = data.choices.map((c: any) => turnOf(c?.message)).filter(Boolean) as Turn[];
      if (turns.length) return turns;
    }
    const single = turnOf(data);
    if (single) return [single];
  }
  return null;
}
