/** The span waterfall: the span tree as rows with timing bars on one time axis, a minimap,
 * find-in-trace, jumps between errors and findings, the critical path and the decisive
 * span marked; the selected span's detail beside the chart (below it in a narrow column). */
import { decodeFrame } from "./arrow";
import type { Channel } from "./channel";
import { criticalPath } from "./criticalPath";
import { installDrag, Minimap } from "./minimap";
import { renderDetail, type Decisive } from "./spanDetail";
import { clear, fmtDuration, fmtInt, h, shortId } from "./util";
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
  annotated: Float64Array;
  tool: (string | null)[];
  model: (string | null)[];
  /** Worst severity of the analysis' findings on the span, or null. */
  finding: (string | null)[];
}

const ROW_HEIGHT = 24;
const KINDS = ["agent", "chain", "llm", "tool", "retriever", "embedding", "reranker", "guardrail", "evaluator", "unknown"];
const PROMPT = "Select a span to see its attributes, input, output and events.";

type Jump = "error" | "finding" | "match";

export class Waterfall {
  readonly el: HTMLElement;
  traceId: string | null = null;
  private spans: Spans | null = null;
  private children: Int32Array[] = [];
  private depth = new Int32Array(0);
  private roots: number[] = [];
  /** Every span in depth-first order, collapsed or not (the order jumps follow). */
  private order = new Int32Array(0);
  private rank = new Int32Array(0);
  private parents = new Int32Array(0);
  private visible: Int32Array = new Int32Array(0);
  private collapsed = new Set<number>();
  private highlight = new Set<string>();
  private error = new Uint8Array(0);
  private flagged = new Uint8Array(0);
  private critical = new Uint8Array(0);
  private matched = new Uint8Array(0);
  private matchCount = 0;
  private decisive: { index: number; info: Decisive } | null = null;
  private focusSpan: string | null = null;
  private selected = -1;
  private traceEnd = 1;
  private z0 = 0;
  private z1 = 1;
  private findSeq = 0;
  private findText = "";
  private rows: VirtualRows;
  private title: HTMLElement;
  private meta: HTMLElement;
  private axis: HTMLElement;
  private detail: HTMLElement;
  private zoomLabel: HTMLElement;
  private placeholder: HTMLElement;
  private main: HTMLElement;
  private minimap: Minimap;
  private findInput: HTMLInputElement;
  private findCount: HTMLElement;
  private counts: Record<"error" | "finding", HTMLElement>;
  private decisiveButton: HTMLElement;

  constructor(private channel: Channel, backLabel: string | null, onBack: (() => void) | null) {
    this.title = h("span", { class: "halo-title" });
    this.meta = h("span", { class: "halo-dim" });
    this.zoomLabel = h("span", { class: "halo-dim halo-zoom-label" });
    const button = (label: string, title: string, action: () => void, extra: Record<string, unknown> = {}) =>
      h("button", { class: "halo-button", type: "button", title, onclick: action, ...extra }, label);
    const toolbar = h("div", { class: "halo-toolbar" },
      onBack ? button(`← ${backLabel}`, "Back", onBack) : null,
      this.title, this.meta, h("span", { class: "halo-grow" }),
      this.zoomLabel,
      button("Reset zoom", "Show the whole trace (double-click the minimap)", () => this.zoom(0, this.traceEnd)),
      button("Expand all", "Expand every subtree", () => this.setCollapsed([])),
      button("Collapse all", "Collapse to the roots' children", () => this.collapseAll()));
    this.findInput = h("input", {
      class: "halo-input halo-find", type: "search", placeholder: "Find in trace (/): name, tool, arguments, input, output…",
      "aria-label": "Find in trace",
    });
    this.findInput.addEventListener("input", () => this.find(this.findInput.value));
    this.findInput.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        this.jump("match", event.shiftKey ? -1 : 1);
      } else if (event.key === "Escape") {
        this.findInput.value = "";
        this.find("");
        this.rows.viewport.focus();
      }
    });
    this.findCount = h("span", { class: "halo-dim halo-find-count" });
    const nav = (kind: Jump, label: string, key: string) => h("span", { class: "halo-nav", "data-nav": kind },
      button("◀", `Previous ${label} (Shift+${key.toUpperCase()})`, () => this.jump(kind, -1), { "data-dir": "prev" }),
      button("▶", `Next ${label} (${key})`, () => this.jump(kind, 1), { "data-dir": "next" }));
    this.counts = {
      error: h("span", { class: "halo-nav-label" }, "errors"),
      finding: h("span", { class: "halo-nav-label" }, "findings"),
    };
    this.decisiveButton = button("◆ Decisive span", "Jump to the span the analysis blames for this failure (d)",
      () => this.jumpToDecisive(), { class: "halo-button halo-decisive-button" });
    const findbar = h("div", { class: "halo-toolbar halo-findbar" },
      this.findInput, this.findCount, nav("match", "match", "enter"),
      h("span", { class: "halo-sep" }), this.counts.error, nav("error", "error", "e"),
      h("span", { class: "halo-sep" }), this.counts.finding, nav("finding", "finding", "f"),
      this.decisiveButton, h("span", { class: "halo-grow" }), this.legend());
    this.minimap = new Minimap((from, to) => this.zoom(from, to));
    const brush = h("div", { class: "halo-brush" });
    this.axis = h("div", { class: "halo-axis", title: "Drag here or on the bars to zoom to a time range" }, brush);
    const resize = h("span", { class: "halo-col-resize", title: "Drag to resize the name column" });
    this.installResize(resize);
    const ruler = h("div", { class: "halo-wf-grid halo-ruler" },
      h("div", { class: "halo-cell halo-dim halo-ruler-name" }, "Span", resize), this.axis);
    const overview = h("div", { class: "halo-wf-grid halo-overview" },
      h("div", { class: "halo-cell halo-dim" }, "Whole trace"), this.minimap.el);
    this.rows = new VirtualRows(ROW_HEIGHT, (i, row) => this.renderRow(i, row), "halo-wf-body");
    this.rows.viewport.tabIndex = 0;
    this.rows.viewport.addEventListener("click", (event) => this.onClick(event));
    const zoomFromDrag = (a: number, b: number) => {
      const span = this.z1 - this.z0;
      this.zoom(this.z0 + a * span, this.z0 + b * span);
    };
    installDrag(this.axis, () => this.axis.getBoundingClientRect(), brush, zoomFromDrag);
    installDrag(this.rows.viewport, () => this.axis.getBoundingClientRect(), brush, zoomFromDrag,
      (event) => !!(event.target as HTMLElement).closest(".halo-wf-track"));
    this.axis.addEventListener("dblclick", () => this.zoom(0, this.traceEnd));
    this.detail = h("div", { class: "halo-detail" }, h("div", { class: "halo-dim" }, PROMPT));
    this.placeholder = h("div", { class: "halo-empty" }, "Select a trace to see its waterfall.");
    this.main = h("div", { class: "halo-wf-main" },
      h("div", { class: "halo-wf-left" }, overview, ruler, this.rows.viewport), this.detail);
    this.main.style.display = "none";
    findbar.style.display = "none";
    this.el = h("div", { class: "halo-waterfall" }, toolbar, findbar, this.placeholder, this.main);
    this.el.addEventListener("keydown", (event) => this.onKey(event));
    channel.on("waterfall", (content, buffers) => this.receive(content, buffers));
    channel.on("detail", (content) => this.showDetail(content));
    channel.on("found", (content) => this.found(content));
  }

  /** Ask the kernel for a trace (optionally with spans to highlight, or a span to select). */
  load(traceId: string, extra: Record<string, unknown> = {}): void {
    this.traceId = traceId;
    this.focusSpan = typeof extra.span_id === "string" ? extra.span_id : null;
    this.title.textContent = `Loading ${shortId(traceId)}…`;
    this.channel.request({ type: "open", trace_id: traceId, ...extra });
  }

  private legend(): HTMLElement {
    const item = (swatch: Node, label: string) => h("span", { class: "halo-legend-item" }, swatch, label);
    return h("details", { class: "halo-legend" }, h("summary", null, "Legend"),
      h("div", { class: "halo-legend-body" },
        ...KINDS.map((kind) => item(h("span", { class: `halo-kind-dot halo-kind-${kind}` }), kind)),
        item(h("span", { class: "halo-mark halo-mark-error" }, "!"), "error status"),
        item(h("span", { class: "halo-mark halo-mark-flag" }, "⚑"), "flagged by the cluster you came from"),
        item(h("span", { class: "halo-mark halo-sev-medium" }, "●"), "finding (colour: severity)"),
        item(h("span", { class: "halo-mark halo-mark-decisive" }, "◆"), "decisive span of the failure"),
        item(h("span", { class: "halo-legend-critical" }), "critical path"),
        item(h("span", { class: "halo-mark" }, "✎"), "annotated")));
  }

  private receive(content: any, buffers: DataView[]): void {
    if (this.traceId && content.trace_id !== this.traceId) return;
    const sameTrace = content.keep && this.spans && this.traceId === content.trace_id;
    const previous = sameTrace && this.selected >= 0 ? this.spans!.id[this.selected] : null;
    // A trace still receiving spans: a view showing all of it keeps showing all of it.
    const whole = !sameTrace || (this.z0 <= 0 && this.z1 >= this.traceEnd * 0.999);
    this.traceId = content.trace_id;
    const findbar = this.el.querySelector(".halo-findbar") as HTMLElement;
    if (content.error) {
      this.title.textContent = content.error;
      this.main.style.display = "none";
      findbar.style.display = "none";
      this.placeholder.style.display = "";
      this.placeholder.textContent = content.error;
      return;
    }
    const frame = decodeFrame(buffers[0]);
    const c = frame.columns as any;
    const n = frame.length;
    this.spans = {
      length: n, id: c.span_id, parent: c.parent_span_id, name: c.name, kind: c.kind,
      start: c.start, end: c.end, status: c.status, annotated: c.annotated, tool: c.tool_name, model: c.model,
      finding: c.finding ?? new Array(n).fill(null),
    };
    this.highlight = new Set(content.highlight ?? []);
    this.buildTree();
    const s = this.spans;
    this.error = new Uint8Array(n);
    this.flagged = new Uint8Array(n);
    let errors = 0, findings = 0;
    for (let i = 0; i < n; i++) {
      if (s.status[i] === "error") { this.error[i] = 1; errors++; }
      // "info" findings (clock skew, a trace still running) take no part in the jumps.
      if ((s.finding[i] && s.finding[i] !== "info") || this.highlight.has(s.id[i])) { this.flagged[i] = 1; findings++; }
    }
    this.critical = criticalPath(this.roots, this.children, s.start, s.end, this.traceEnd);
    const blamed = content.decisive ? s.id.indexOf(content.decisive.span_id) : -1;
    this.decisive = blamed >= 0 ? {
      index: blamed,
      info: { score: content.decisive.score ?? NaN, agent: content.decisive.agent ?? null, reasons: content.decisive.reasons ?? [] },
    } : null;
    this.decisiveButton.style.display = this.decisive ? "" : "none";
    this.counts.error.textContent = `${fmtInt(errors)} error${errors === 1 ? "" : "s"}`;
    this.counts.finding.textContent = `${fmtInt(findings)} finding${findings === 1 ? "" : "s"}`;
    this.el.querySelectorAll<HTMLElement>("[data-nav=error] button").forEach((b) => { (b as HTMLButtonElement).disabled = !errors; });
    this.el.querySelectorAll<HTMLElement>("[data-nav=finding] button").forEach((b) => { (b as HTMLButtonElement).disabled = !findings; });
    this.title.textContent = content.name || "(unnamed trace)";
    this.meta.textContent = ` ${shortId(content.trace_id)} · ${fmtDuration(this.traceEnd)} · ` +
      `${fmtInt(n)} spans` + (errors ? ` · ${errors} error${errors > 1 ? "s" : ""}` : "");
    this.placeholder.style.display = "none";
    this.main.style.display = "";
    findbar.style.display = "";
    if (!sameTrace) {
      this.collapsed.clear();
      this.selected = -1;
      this.matched = new Uint8Array(n);
      this.matchCount = 0;
      this.findInput.value = "";
      this.findText = "";
      this.findCount.textContent = "";
    } else {
      this.selected = previous ? s.id.indexOf(previous) : -1;
      if (this.matched.length !== n) this.find(this.findText);
    }
    if (whole) {
      this.z0 = 0;
      this.z1 = this.traceEnd;
    }
    this.minimap.setData({ order: this.order, start: s.start, end: s.end, error: this.error, flagged: this.flagged, traceEnd: this.traceEnd });
    this.zoom(this.z0, this.z1);
    if (!sameTrace) {
      this.rows.viewport.scrollTop = 0;
      const focus = this.focusSpan ? s.id.indexOf(this.focusSpan) : -1;
      this.focusSpan = null;
      const first = focus >= 0 ? focus : this.firstHighlighted();
      if (first >= 0) this.reveal(first);
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
    this.parents = new Int32Array(n).fill(-1);
    this.children.forEach((k, p) => { for (const c of k) this.parents[c] = p; });
    this.depth = new Int32Array(n);
    this.rank = new Int32Array(n).fill(-1);
    const order: number[] = [];
    const stack: [number, number][] = this.roots.slice().reverse().map((r) => [r, 0]);
    while (stack.length) {
      const [i, d] = stack.pop()!;
      if (this.rank[i] >= 0) continue;
      this.rank[i] = order.length;
      order.push(i);
      this.depth[i] = d;
      const k = this.children[i];
      for (let j = k.length - 1; j >= 0; j--) stack.push([k[j], d + 1]);
    }
    this.order = Int32Array.from(order);
    this.traceEnd = end > 0 ? end : 1;
  }

  private zoomed(): boolean {
    return this.z0 > 0 || this.z1 < this.traceEnd * 0.999;
  }

  /** Depth-first order of the rows not hidden by a collapsed ancestor; when zoomed, only the
   * spans that overlap the window (so a zoomed view is not rows without bars). */
  private layout(): void {
    const s = this.spans!;
    const out: number[] = [];
    const zoomed = this.zoomed();
    const hidden = new Uint8Array(s.length);
    for (const i of this.order) {
      const parent = this.parents[i];
      if (parent >= 0 && (hidden[parent] || this.collapsed.has(parent))) {
        hidden[i] = 1;
        continue;
      }
      if (zoomed) {
        const end = Number.isFinite(s.end[i]) ? s.end[i] : this.traceEnd;
        if (end < this.z0 || s.start[i] > this.z1) continue;
      }
      out.push(i);
    }
    this.visible = Int32Array.from(out);
    this.rows.setCount(this.visible.length);
  }

  private firstHighlighted(): number {
    if (!this.highlight.size) return -1;
    for (const i of this.order) if (this.highlight.has(this.spans!.id[i])) return i;
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
    if (!(to > from) || !this.spans) return;
    this.z0 = Math.max(0, from);
    this.z1 = Math.min(Math.max(to, this.z0 + 1e-6), this.traceEnd);
    this.layout();
    this.zoomLabel.textContent = this.zoomed()
      ? `zoom ${fmtDuration(this.z0)} – ${fmtDuration(this.z1)} · ${fmtInt(this.visible.length)} spans in range` : "";
    this.minimap.setWindow(this.z0, this.z1);
    this.paintAxis();
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

  private installResize(handle: HTMLElement): void {
    handle.addEventListener("mousedown", (down) => {
      down.preventDefault();
      down.stopPropagation();
      const left = this.main.getBoundingClientRect().left;
      const move = (event: MouseEvent) => {
        const width = Math.max(120, event.clientX - left);
        this.el.style.setProperty("--halo-wf-name", `${width}px`);
      };
      const up = () => {
        window.removeEventListener("mousemove", move);
        window.removeEventListener("mouseup", up);
      };
      window.addEventListener("mousemove", move);
      window.addEventListener("mouseup", up);
    });
  }

  private renderRow(index: number, row: HTMLDivElement): void {
    const s = this.spans!;
    const i = this.visible[index];
    const error = this.error[i] === 1;
    const flagged = this.highlight.has(s.id[i]);
    const decisive = this.decisive?.index === i;
    row.className = `halo-row halo-wf-grid halo-kind-${s.kind[i]}` + (error ? " halo-error" : "") +
      (flagged ? " halo-flagged" : "") + (i === this.selected ? " halo-selected" : "") +
      (this.matched[i] ? " halo-match" : "") + (this.critical[i] ? " halo-critical" : "") +
      (decisive ? " halo-decisive" : "");
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
    if (decisive) marks.append(h("span", { class: "halo-mark halo-mark-decisive", title: "decisive span of the failure" }, "◆"));
    if (error) marks.append(h("span", { class: "halo-mark halo-mark-error", title: "error status" }, "!"));
    if (flagged) marks.append(h("span", { class: "halo-mark halo-mark-flag", title: "flagged by the analysis" }, "⚑"));
    else if (s.finding[i] && s.finding[i] !== "info") {
      marks.append(h("span", { class: `halo-mark halo-mark-finding halo-sev-${s.finding[i]}`, title: `finding (${s.finding[i]})` }, "●"));
    }
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
    if (!this.spans || event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = (event.target as HTMLElement).closest("input, textarea, select");
    if (typing) return;
    const position = this.selected >= 0 ? this.visible.indexOf(this.selected) : -1;
    const moves: Record<string, () => void> = {
      "/": () => this.findInput.focus(),
      e: () => this.jump("error", 1), E: () => this.jump("error", -1),
      f: () => this.jump("finding", 1), F: () => this.jump("finding", -1),
      n: () => this.jump("match", 1), N: () => this.jump("match", -1),
      d: () => this.jumpToDecisive(),
      ArrowDown: () => position + 1 < this.visible.length && this.select(this.visible[position + 1]),
      ArrowUp: () => position > 0 && this.select(this.visible[position - 1]),
      ArrowLeft: () => this.selected >= 0 && this.children[this.selected].length && !this.collapsed.has(this.selected) && this.toggle(this.selected),
      ArrowRight: () => this.collapsed.has(this.selected) && this.toggle(this.selected),
    };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    event.stopPropagation();
    move();
  }

  /** Select the next (or previous) span with an error, a finding or a find match, in
   * depth-first order from the selection, wrapping around. */
  private jump(kind: Jump, direction: 1 | -1): void {
    if (!this.spans) return;
    const marks = kind === "error" ? this.error : kind === "finding" ? this.flagged : this.matched;
    const n = this.order.length;
    const from = this.selected >= 0 ? this.rank[this.selected] : direction > 0 ? -1 : n;
    for (let step = 1; step <= n; step++) {
      const i = this.order[(((from + direction * step) % n) + n) % n];
      if (marks[i]) {
        this.reveal(i);
        return;
      }
    }
  }

  private jumpToDecisive(): void {
    if (this.decisive) this.reveal(this.decisive.index);
  }

  /** Make span `i` visible (expand its ancestors, leave a zoom that hides it) and select it. */
  private reveal(i: number): void {
    const s = this.spans!;
    let changed = false;
    for (let p = this.parents[i]; p >= 0; p = this.parents[p]) {
      if (this.collapsed.delete(p)) changed = true;
    }
    const end = Number.isFinite(s.end[i]) ? s.end[i] : this.traceEnd;
    if (this.zoomed() && (end < this.z0 || s.start[i] > this.z1)) this.zoom(0, this.traceEnd);
    else if (changed) this.layout();
    this.select(i);
  }

  private find(text: string): void {
    this.findText = text.trim();
    const seq = ++this.findSeq;
    if (!this.findText || !this.spans) {
      this.matched = new Uint8Array(this.spans?.length ?? 0);
      this.matchCount = 0;
      this.findCount.textContent = "";
      this.rows.refresh();
      return;
    }
    // What the rows already hold (names, kinds, tools, models, ids) matches at once; the
    // kernel adds matches in content (arguments, input, output, attributes) when it answers.
    const needle = this.findText.toLowerCase();
    const s = this.spans;
    const local = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) {
      if (s.name[i].toLowerCase().includes(needle) || s.kind[i].includes(needle) || s.id[i].includes(needle)
          || (s.tool[i] ?? "").toLowerCase().includes(needle) || (s.model[i] ?? "").toLowerCase().includes(needle)) local[i] = 1;
    }
    this.showMatches(local, true);
    this.channel.request({ type: "find", trace_id: this.traceId, text: this.findText, seq });
  }

  private found(content: any): void {
    if (content.seq !== this.findSeq || content.trace_id !== this.traceId || !this.spans) return;
    const s = this.spans;
    const wanted = new Set<string>(content.span_ids ?? []);
    const matched = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) if (this.matched[i] || wanted.has(s.id[i])) matched[i] = 1;
    this.showMatches(matched, false, content.error);
    this.findCount.dataset.seq = String(content.seq);
  }

  private showMatches(matched: Uint8Array<ArrayBuffer>, pending: boolean, error?: string): void {
    this.matched = matched;
    this.matchCount = matched.reduce((sum, m) => sum + m, 0);
    const count = this.matchCount ? `${fmtInt(this.matchCount)} match${this.matchCount === 1 ? "" : "es"}` : "no match";
    this.findCount.textContent = error ?? (pending ? `${count} · searching content…` : count);
    if (this.matchCount && !(this.selected >= 0 && this.matched[this.selected])) this.jump("match", 1);
    else this.rows.refresh();
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
    this.detail.appendChild(h("div", { class: "halo-dim" }, PROMPT));
  }

  private showDetail(content: any): void {
    const s = this.spans;
    if (!s || this.selected < 0 || content.span_id !== s.id[this.selected]) return;
    clear(this.detail);
    if (content.error) {
      this.detail.appendChild(h("div", { class: "halo-error-text" }, content.error));
      return;
    }
    const i = this.selected;
    const end = Number.isFinite(s.end[i]) ? s.end[i] : this.traceEnd;
    this.detail.append(...renderDetail(content.detail, {
      start: s.start[i],
      decisive: this.decisive?.index === i ? this.decisive.info : null,
      onZoom: () => this.zoom(s.start[i], Math.max(end, s.start[i] + 1e-3)),
    }));
  }
}
