/** DOM and formatting helpers shared by every view. */

export type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, unknown> | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") {
        node.addEventListener(key.slice(2), value as EventListener);
      } else if (key === "style" && typeof value === "object") {
        Object.assign(node.style, value);
      } else {
        node.setAttribute(key, value === true ? "" : String(value));
      }
    }
  }
  append(node, children);
  return node;
}

export function append(node: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

export function clear(node: Node): void {
  while (node.firstChild) node.removeChild(node.firstChild);
}

export function fmtDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "running";
  if (ms === 0) return "0";
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : ms < 100 ? 1 : 0)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${((ms % 60_000) / 1000).toFixed(0)} s`;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

export function fmtTime(epochMs: number): string {
  if (!Number.isFinite(epochMs)) return "";
  const d = new Date(epochMs);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

const INTEGER = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

export function fmtInt(n: number): string {
  return Number.isFinite(n) ? INTEGER.format(n) : "";
}

export function shortId(id: string | null | undefined): string {
  return id ? id.slice(0, 8) : "";
}

/** A value that may be long: the first `limit` characters with a toggle to show all. */
export function expandable(text: string | null | undefined, limit = 600): HTMLElement {
  const value = text ?? "";
  const pre = h("pre", { class: "halo-pre" });
  if (value.length <= limit) {
    pre.textContent = value;
    return pre;
  }
  const wrap = h("div", { class: "halo-expandable" }, pre);
  let open = false;
  const toggle = h("button", { class: "halo-link", type: "button" });
  const paint = () => {
    pre.textContent = open ? value : `${value.slice(0, limit)}…`;
    toggle.textContent = open ? "Show less" : `Show all (${fmtInt(value.length)} characters)`;
  };
  toggle.addEventListener("click", () => {
    open = !open;
    paint();
  });
  paint();
  wrap.appendChild(toggle);
  return wrap;
}

export const SEVERITY_ORDER = ["critical", "high", "medium", "low", "info"];

export function severityBadge(severity: string | null | undefined): HTMLElement {
  const s = (severity ?? "info").toLowerCase();
  return h("span", { class: `halo-sev halo-sev-${s}` }, s);
}

export function statusBadge(status: string | null | undefined): HTMLElement {
  const s = (status ?? "unset").toLowerCase();
  return h("span", { class: `halo-status halo-status-${s}` }, s);
}
