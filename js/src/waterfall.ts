/** The span waterfall: the span tree as rows with timing bars on one time axis. */
import { decodeFrame } from "./arrow";
import type { Channel } from "./channel";
import { clear, expandable, fmtDuration, fmtInt, h, severityBadge, shortId, statusBadge } from "./util";
import { VirtualRows } from "./virtual";

interface Spans {
  length: number;
  id: string[];
  parent: (string | null)[];
  name: string[];
  kind: string[];
  start: Float64Array;
  end: Float64Array;
  status: string[];
  tokens: Float64Array;
  model: (string | null)[];
  tool: (string | null)[];
  events: Float64Array;
  annotated: Float64Array;
}

const ROW_HEIGHT = 24;

export class Waterfall {
  readonly el: HTMLElement;
  traceId: string | null = null;
  private spans: Spans | null = null;
  private children: Int32Array[] = [];
  private depth = new Int32Array(0);
  private roots: number[] = [];
  private visible: Int32Array = new Int32Array(0);
  private collapsed = new Set<number>();
  private highlight = new Set<string>();
  private selected = -1;
  private traceEnd = 1;
  private z0 = 0;
  private z1 = 1;
  private rows: VirtualRows;
  private title: HTMLElement;
  private meta: HTMLElement;
  private axis: HTMLElement;
  private brush: HTMLElement;
  private detail: HTMLElement;
  private zoomLabel: HTMLElement;
  private placeholder: HTMLElement;
  private main: HTMLElement;

  constructor(private channel: Channel, backLabel: string | null, onBack: (() => void) | null) {
    this.title = h("span", { class: "halo-title" });
    this.meta = h("span", { class: "halo-dim" });
    this.zoomLabel = h("span", { class: "halo-dim halo-zoom-label" });
    const button = (label: string, title: string, action: () => void) =>
      h("button", { class: "halo-button", type: "button", title, onclick: action }, label);
    const toolbar = h("div", { class: "halo-toolbar" },
      onBack ? button(`← ${backLabel}`, "Back", onBack) : null,
      this.title, this.meta, h("span", { class: "halo-grow" }),
      this.zoomLabel,
      button("Reset zoom", "Show the whole trace", () => this.zoom(0, this.traceEnd)),
      button("Expand all", "Expand every subtree", () => this.setCollapsed([])),
      button("Collapse all", "Collapse to the roots' children", () => this.collapseAll()));
    this.brush = h("div", { class: "halo-brush" });
    this.axis = h("div", { class: "halo-axis", title: "Drag to zoom to a time range" }, this.brush);
    this.installBrush();
    const ruler = h("div", { class: "halo-wf-grid halo-ruler" },
      h("div", { class: "halo-cell halo-dim" }, "Span"), this.axis);
    this.rows = new VirtualRows(ROW_HEIGHT, (i, row) => this.renderRow(i, row), "halo-wf-body");
    this.rows.viewport.tabIndex = 0;
    this.rows.viewport.addEventListener("click", (event) => this.onClick(event));
    this.rows.viewport.addEventListener("keydown", (event) => this.onKey(event));
    this.detail = h("div", { class: "halo-detail" },
      h("div", { class: "halo-dim" }, "Select a span to see its attributes, input, output and events."));
    this.placeholder = h("div", { class: "halo-empty" }, "Select a trace to see its waterfall.");
    this.main = h("div", { class: "halo-wf-main" },
      h("div", { class: "halo-wf-left" }, ruler, this.rows.viewport), this.detail);
    this.main.style.display = "none";
    this.el = h("div", { class: "halo-waterfall" }, toolbar, this.placeholder, this.main);
    channel.on("waterfall", (content, buffers) => this.receive(content, buffers));
    channel.on("detail", (content) => this.showDetail(content));
  }

  /** Ask the kernel for a trace (optionally with spans to highlight). */
  load(traceId: string, extra: Record<string, unknown> = {}): void {
    this.traceId = traceId;
    this.title.textContent = `Loading ${shortId(traceId)}…`;
    this.channel.request({ type: "open", trace_id: traceId, ...extra });
  }

  private receive(content: any, buffers: DataView[]): void {
    if (this.traceId && content.trace_id !== this.traceId) return;
    const sameTrace = content.keep && this.spans && this.traceId === content.trace_id;
    const previous = sameTrace ? this.spans!.id[this.selected] : null;
    this.traceId = content.trace_id;
    if (content.error) {
      this.title.textContent = content.error;
      this.main.style.display = "none";
      this.placeholder.style.display = "";
      this.placeholder.textContent = content.error;
      return;
    }
    const frame = decodeFrame(buffers[0]);
    const c = frame.columns as any;
    this.spans = {
      length: frame.length, id: c.span_id, parent: c.parent_span_id, name: c.name, kind: c.kind,
      start: c.start, end: c.end, status: c.status, tokens: c.tokens_total, model: c.model,
      tool: c.tool_name, events: c.events, annotated: c.annotated,
    };
    this.highlight = new Set(content.highlight ?? []);
    this.buildTree();
    const errors = this.spans.status.filter((s) => s === "error").length;
    this.title.textContent = content.name || "(unnamed trace)";
    this.meta.textContent = ` ${shortId(content.trace_id)} · ${fmtDuration(this.traceEnd)} · ` +
      `${fmtInt(frame.length)} spans` + (errors ? ` · ${errors} error${errors > 1 ? "s" : ""}` : "");
    this.placeholder.style.display = "none";
    this.main.style.display = "";
    if (!sameTrace) {
      this.collapsed.clear();
      this.selected = -1;
      this.z0 = 0;
      this.z1 = this.traceEnd;
    } else {
      this.selected = previous ? this.spans.id.indexOf(previous) : -1;
      if (this.z1 >= this.traceEnd * 0.999 || this.z1 <= 0) this.z1 = this.traceEnd;
    }
    this.layout();
    if (!sameTrace) {
      this.rows.viewport.scrollTop = 0;
      const first = this.firstHighlighted();
      if (first >= 0) this.select(first);
      else this.clearDetail();
    }
  }

  private buildTree(): void {
    const s = this.spans!;
    const n = s.length;
    const at = new Map<string, number>();
    for (let i = 0; i < n; i++) at.set(s.id[i], i);
    const kids: number[][] = Array.from({ length: n }, () => []);
    this.roots = [];
    let end = 0;
    for (let i = 0; i < n; i++) {
      const p = s.parent[i] ? at.get(s.parent[i]!) : undefined;
      if (p === undefined || p === i) this.roots.push(i);
      else kids[p].push(i);
      end = Math.max(end, s.start[i], Number.isFinite(s.end[i]) ? s.end[i] : s.start[i]);
    }
    const byStart = (a: number, b: number) => s.start[a] - s.start[b] || a - b;
    this.roots.sort(byStart);
    this.children = kids.map((k) => Int32Array.from(k.sort(byStart)));
    this.depth = new Int32Array(n);
    const stack = this.roots.map((r) => [r, 0]);
    const seen = new Uint8Array(n);
    while (stack.length) {
      const [i, d] = stack.pop()!;
      if (seen[i]) continue;
      seen[i] = 1;
      this.depth[i] = d;
      for (const k of this.children[i]) stack.push([k, d + 1]);
    }
    this.traceEnd = end > 0 ? end : 1;
  }

  /** Depth-first order of the rows not hidden by a collapsed ancestor. */
  private layout(): void {
    const out: number[] = [];
    const seen = new Uint8Array(this.spans!.length);
    const stack = [...this.roots].reverse();
    while (stack.length) {
      const i = stack.pop()!;
      if (seen[i]) continue;
      seen[i] = 1;
      out.push(i);
      if (this.collapsed.has(i)) continue;
      const kids = this.children[i];
      for (let k = kids.length - 1; k >= 0; k--) stack.push(kids[k]);
    }
    this.visible = Int32Array.from(out);
    this.paintAxis();
    this.rows.setCount(this.visible.length);
  }

  private firstHighlighted(): number {
    if (!this.highlight.size) return -1;
    for (const i of this.visible) if (this.highlight.has(this.spans!.id[i])) return i;
    return -1;
  }

  private setCollapsed(ids: number[]): void {
    this.collapsed = new Set(ids);
    this.layout();
  }

  private collapseAll(): void {
    const ids: number[] = [];
    for (let i = 0; i < this.children.length; i++) {
      if (this.children[i].length && this.depth[i] >= 1) ids.push(i);
    }
    this.setCollapsed(ids);
  }

  private toggle(i: number): void {
    if (this.collapsed.has(i)) this.collapsed.delete(i);
    else this.collapsed.add(i);
    this.layout();
  }

  zoom(from: number, to: number): void {
    if (!(to > from)) return;
    this.z0 = Math.max(0, from);
    this.z1 = Math.min(Math.max(to, this.z0 + 1e-6), this.traceEnd);
    const whole = this.z0 <= 0 && this.z1 >= this.traceEnd;
    this.zoomLabel.textContent = whole ? "" : `zoom ${fmtDuration(this.z0)} – ${fmtDuration(this.z1)}`;
    this.paintAxis();
    this.rows.refresh();
  }

  private paintAxis(): void {
    for (const tick of Array.from(this.axis.querySelectorAll(".halo-tick"))) tick.remove();
    const span = this.z1 - this.z0;
    const raw = span / 6;
    const magnitude = 10 ** Math.floor(Math.log10(raw || 1));
    const step = [1, 2, 5, 10].map((m) => m * magnitude).find((v) => v >= raw) ?? raw;
    for (let t = Math.ceil(this.z0 / step) * step; t <= this.z1; t += step) {
      const left = ((t - this.z0) / span) * 100;
      if (left > 96) break;
      this.axis.appendChild(h("span", { class: "halo-tick", style: { left: `${left}%` } }, fmtDuration(t)));
    }
  }

  private installBrush(): void {
    let startX = -1;
    const fraction = (event: MouseEvent) => {
      const rect = this.axis.getBoundingClientRect();
      return Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width));
    };
    const move = (event: MouseEvent) => {
      const x = fraction(event);
      this.brush.style.left = `${Math.min(startX, x) * 100}%`;
      this.brush.style.width = `${Math.abs(x - startX) * 100}%`;
    };
    const up = (event: MouseEvent) => {
      window.removeEventListener("mousemove", move);
      window.removeEventListener("mouseup", up);
      this.brush.style.display = "none";
      const x = fraction(event);
      const [a, b] = [Math.min(startX, x), Math.max(startX, x)];
      if (b - a > 0.005) {
        const span = this.z1 - this.z0;
        this.zoom(this.z0 + a * span, this.z0 + b * span);
      }
    };
    this.axis.addEventListener("mousedown", (event) => {
      event.preventDefault();
      startX = fraction(event);
      this.brush.style.display = "block";
      this.brush.style.left = `${startX * 100}%`;
      this.brush.style.width = "0";
      window.addEventListener("mousemove", move);
      window.addEventListener("mouseup", up);
    });
    this.axis.addEventListener("dblclick", () => this.zoom(0, this.traceEnd));
  }

  private renderRow(index: number, row: HTMLDivElement): void {
    const s = this.spans!;
    const i = this.visible[index];
    const error = s.status[i] === "error";
    const flagged = this.highlight.has(s.id[i]);
    row.className = `halo-row halo-wf-grid halo-kind-${s.kind[i]}` + (error ? " halo-error" : "") +
      (flagged ? " halo-flagged" : "") + (i === this.selected ? " halo-selected" : "");
    row.dataset.spanId = s.id[i];
    row.dataset.span = String(i);
    if (row.childElementCount !== 2) {
      clear(row);
      row.append(
        h("div", { class: "halo-cell halo-wf-name" }, h("span", { class: "halo-caret" }),
          h("span", { class: "halo-kind-dot" }), h("span", { class: "halo-ellipsis" }),
          h("span", { class: "halo-marks" })),
        h("div", { class: "halo-cell halo-wf-track" }, h("div", { class: "halo-bar" }),
          h("span", { class: "halo-bar-label" })));
    }
    // Pool rows keep their elements; scrolling only rewrites their text, classes and geometry.
    const [nameCell, track] = Array.from(row.children) as HTMLElement[];
    const [caret, dot, name, marks] = Array.from(nameCell.children) as HTMLElement[];
    nameCell.style.paddingLeft = `${4 + this.depth[i] * 14}px`;
    const kids = this.children[i].length;
    const collapsed = this.collapsed.has(i);
    caret.textContent = kids ? (collapsed ? "▸" : "▾") : "";
    if (kids) {
      caret.dataset.action = "toggle";
      caret.title = `${kids} children`;
    } else {
      delete caret.dataset.action;
      caret.removeAttribute("title");
    }
    dot.title = s.kind[i];
    name.textContent = s.name[i];
    name.title = s.name[i];
    marks.replaceChildren();
    if (error) marks.append(h("span", { class: "halo-mark halo-mark-error", title: "error status" }, "!"));
    if (flagged) marks.append(h("span", { class: "halo-mark halo-mark-flag", title: "flagged by the analysis" }, "⚑"));
    if (s.annotated[i] > 0) marks.append(h("span", { class: "halo-mark", title: "annotated" }, "✎"));
    if (collapsed) marks.append(h("span", { class: "halo-dim" }, ` +${this.descendants(i)}`));
    const [bar, label] = Array.from(track.children) as HTMLElement[];
    const start = s.start[i];
    const running = !Number.isFinite(s.end[i]);
    const end = running ? this.traceEnd : s.end[i];
    const span = this.z1 - this.z0;
    const left = ((start - this.z0) / span) * 100;
    const width = Math.max(((end - start) / span) * 100, 0.15);
    const shown = left <= 100 && left + width >= 0;
    bar.style.display = label.style.display = shown ? "" : "none";
    if (!shown) return;
    const clippedLeft = Math.max(left, 0);
    const clippedWidth = Math.min(left + width, 100) - clippedLeft;
    bar.className = `halo-bar${running ? " halo-running" : ""}`;
    bar.style.left = `${clippedLeft}%`;
    bar.style.width = `${clippedWidth}%`;
    label.textContent = running ? "running" : fmtDuration(end - start);
    const outside = clippedLeft + clippedWidth > 80;
    label.style.left = outside ? "" : `${clippedLeft + clippedWidth + 0.5}%`;
    label.style.right = outside ? `${100 - clippedLeft + 0.5}%` : "";
  }

  private descendants(i: number): number {
    let count = 0;
    const stack = [i];
    while (stack.length) {
      const k = stack.pop()!;
      for (const c of this.children[k]) {
        count++;
        stack.push(c);
      }
    }
    return count;
  }

  private onClick(event: MouseEvent): void {
    const target = event.target as HTMLElement;
    const row = target.closest(".halo-row") as HTMLElement | null;
    if (!row) return;
    const i = Number(row.dataset.span);
    if (target.dataset.action === "toggle") this.toggle(i);
    else this.select(i);
  }

  private onKey(event: KeyboardEvent): void {
    if (this.selected < 0) return;
    const position = this.visible.indexOf(this.selected);
    const moves: Record<string, () => void> = {
      ArrowDown: () => position + 1 < this.visible.length && this.select(this.visible[position + 1]),
      ArrowUp: () => position > 0 && this.select(this.visible[position - 1]),
      ArrowLeft: () => this.children[this.selected].length && !this.collapsed.has(this.selected) && this.toggle(this.selected),
      ArrowRight: () => this.collapsed.has(this.selected) && this.toggle(this.selected),
    };
    if (moves[event.key]) {
      event.preventDefault();
      moves[event.key]();
    }
  }

  select(i: number): void {
    this.selected = i;
    const position = this.visible.indexOf(i);
    if (position >= 0) this.rows.scrollToRow(position);
    this.rows.refresh();
    const s = this.spans!;
    clear(this.detail);
    this.detail.appendChild(h("div", { class: "halo-title" }, s.name[i]));
    this.detail.appendChild(h("div", { class: "halo-dim" }, "Loading details…"));
    this.channel.request({ type: "detail", trace_id: this.traceId, span_id: s.id[i] });
  }

  private clearDetail(): void {
    clear(this.detail);
    this.detail.appendChild(h("div", { class: "halo-dim" },
      "Select a span to see its attributes, input, output and events."));
  }

  private showDetail(content: any): void {
    const s = this.spans;
    if (!s || this.selected < 0 || content.span_id !== s.id[this.selected]) return;
    clear(this.detail);
    if (content.error) {
      this.detail.appendChild(h("div", { class: "halo-error-text" }, content.error));
      return;
    }
    const d = content.detail;
    const i = this.selected;
    const end = Number.isFinite(s.end[i]) ? s.end[i] : this.traceEnd;
    const zoomTo = h("button", { class: "halo-button", type: "button" }, "Zoom to span");
    zoomTo.addEventListener("click", () => this.zoom(s.start[i], Math.max(end, s.start[i] + 1e-3)));
    const facts: [string, unknown][] = [
      ["kind", d.kind], ["status", d.status], ["span id", d.span_id], ["parent", d.parent_span_id],
      ["start", `+${fmtDuration(s.start[i])}`], ["duration", fmtDuration(d.duration_ms ?? NaN)],
      ["service", d.service], ["model", d.model], ["tool", d.tool_name],
      ["finish reason", d.finish_reason],
      ["tokens", d.tokens_total == null ? null : `${fmtInt(d.tokens_total)} (in ${fmtInt(d.tokens_in ?? NaN)}, out ${fmtInt(d.tokens_out ?? NaN)})`],
    ];
    const table = h("table", { class: "halo-kv" });
    for (const [key, value] of facts) {
      if (value === null || value === undefined || value === "") continue;
      table.appendChild(h("tr", null, h("th", null, key),
        h("td", null, key === "status" ? statusBadge(String(value)) : String(value))));
    }
    const section = (label: string, body: Node | null) =>
      body ? h("details", { class: "halo-section", open: true }, h("summary", null, label), body) : null;
    const text = (value: string | null | undefined) => (value ? expandable(value) : null);
    this.detail.append(
      h("div", { class: "halo-detail-head" },
        h("span", { class: "halo-title" }, d.name), h("span", { class: "halo-grow" }), zoomTo),
      d.status === "error"
        ? h("div", { class: "halo-error-text" }, `Error: ${d.status_message || "status error"}`) : "",
      table);
    const findings = (d.findings ?? []) as any[];
    const parts = [
      findings.length ? section(`Findings (${findings.length})`, h("ul", { class: "halo-list" },
        ...findings.map((f) => h("li", null, severityBadge(f.severity), ` ${f.detector}: ${f.message}`)))) : null,
      section("Input", text(d.input)),
      section("Output", text(d.output)),
      section("Tool arguments", text(d.tool_args)),
      section("Tool result", text(d.tool_result)),
      (d.annotations ?? []).length ? section(`Annotations (${d.annotations.length})`, this.eventList(d.annotations)) : null,
      (d.events ?? []).length ? section(`Events (${d.events.length})`, this.eventList(d.events)) : null,
      section(`Attributes (${Object.keys(d.attributes ?? {}).length})`, this.attributeTable(d.attributes ?? {})),
    ];
    for (const part of parts) if (part) this.detail.appendChild(part);
  }

  private eventList(events: any[]): HTMLElement {
    return h("ul", { class: "halo-list" }, ...events.map((e) =>
      h("li", null, h("b", null, e.name), e.offset_ms != null ? h("span", { class: "halo-dim" }, ` +${fmtDuration(e.offset_ms)}`) : null,
        Object.keys(e.attributes ?? {}).length ? this.attributeTable(e.attributes) : null)));
  }

  private attributeTable(attributes: Record<string, unknown>): HTMLElement {
    const table = h("table", { class: "halo-kv" });
    for (const key of Object.keys(attributes).sort()) {
      const value = attributes[key];
      const textValue = typeof value === "string" ? value : JSON.stringify(value);
      table.appendChild(h("tr", null, h("th", null, key), h("td", null, expandable(textValue, 300))));
    }
    return table;
  }
}
