/** The trace list: one row per trace with its findings, input and output; sortable,
 * filterable, searchable down to span content, keyboard-driven, virtualised, live. */
import { decodeFrame } from "./arrow";
import type { Channel } from "./channel";
import { clear, fmtDuration, fmtInt, fmtTime, h, SEVERITY_ORDER, severityBadge, shortId, statusBadge } from "./util";
import { VirtualRows } from "./virtual";

interface ColumnSpec {
  key: string;
  label: string;
  /** Sorts as a number (and is right-aligned, except the start time and findings). */
  numeric: boolean;
  width: string;
  title?: string;
  render: (list: TraceList, i: number) => Node | string;
}

const SEARCH_DELAY_MS = 120;
/** Columns left out, in this order, while the list is too narrow for all of them. */
const DROP_ORDER = ["llm_count", "tool_count", "service", "output_preview", "error_count", "span_count"];
const FLEX_MIN_PX = 90;

function findingsCell(l: TraceList, i: number): Node | string {
  const count = l.num("finding_count", i);
  if (!(count > 0)) return "";
  const title = l.str("cluster_title", i);
  return h("span", { class: "halo-findings", title: title ? `cluster ${l.str("cluster_id", i)}: ${title}` : `${count} findings` },
    severityBadge(l.str("worst_severity", i)), ` ${fmtInt(count)}`,
    title ? h("span", { class: "halo-dim" }, ` · ${title}`) : null);
}

const COLUMNS: ColumnSpec[] = [
  { key: "start_ms", label: "Started", numeric: true, width: "150px", render: (l, i) => fmtTime(l.num("start_ms", i)) },
  {
    key: "name", label: "Name", numeric: false, width: "190px",
    render: (l, i) => h("span", { class: "halo-ellipsis", title: `${l.str("name", i) ?? ""} ${l.str("trace_id", i)}` },
      l.str("name", i) || "(unnamed)", h("span", { class: "halo-dim" }, ` ${shortId(l.str("trace_id", i))}`)),
  },
  {
    key: "findings", label: "Findings", numeric: true, width: "190px",
    title: "Worst severity and number of findings of the latest analysis, and the trace's failure cluster",
    render: findingsCell,
  },
  {
    key: "input_preview", label: "Input", numeric: false, width: "minmax(90px, 1fr)",
    render: (l, i) => h("span", { class: "halo-ellipsis halo-preview", title: l.str("input_preview", i) ?? "" }, l.str("input_preview", i) ?? ""),
  },
  {
    key: "output_preview", label: "Output", numeric: false, width: "minmax(90px, 1fr)",
    render: (l, i) => h("span", { class: "halo-ellipsis halo-preview", title: l.str("output_preview", i) ?? "" }, l.str("output_preview", i) ?? ""),
  },
  { key: "service", label: "Service", numeric: false, width: "100px", render: (l, i) => l.str("service", i) || "" },
  { key: "duration_ms", label: "Duration", numeric: true, width: "76px", render: (l, i) => fmtDuration(l.num("duration_ms", i)) },
  { key: "span_count", label: "Spans", numeric: true, width: "58px", render: (l, i) => fmtInt(l.num("span_count", i)) },
  { key: "llm_count", label: "LLM", numeric: true, width: "46px", title: "LLM calls", render: (l, i) => fmtInt(l.num("llm_count", i)) },
  { key: "tool_count", label: "Tools", numeric: true, width: "50px", title: "Tool calls", render: (l, i) => fmtInt(l.num("tool_count", i)) },
  { key: "tokens_total", label: "Tokens", numeric: true, width: "68px", render: (l, i) => fmtInt(l.num("tokens_total", i)) },
  { key: "error_count", label: "Errors", numeric: true, width: "56px", title: "Spans with error status", render: (l, i) => fmtInt(l.num("error_count", i)) },
  { key: "status", label: "Status", numeric: false, width: "68px", render: (l, i) => statusBadge(l.str("status", i)) },
];

function alignRight(col: ColumnSpec): boolean {
  return col.numeric && col.key !== "start_ms" && col.key !== "findings";
}

const SEVERITY_RANK: Record<string, number> = Object.fromEntries(SEVERITY_ORDER.map((s, i) => [s, i]));

export class TraceList {
  readonly el: HTMLElement;
  private cols: Record<string, any[]> = {};
  private index = new Map<string, number>();
  private order: Int32Array = new Int32Array(0);
  private sortKey = "start_ms";
  private sortDir = -1;
  private text = "";
  private status = "all";
  private findings = "all";
  /** Traces whose spans match the search text (from the kernel), or null while unknown. */
  private spanMatches: Set<string> | null = null;
  private searchSeq = 0;
  private searchTimer = 0;
  private selected: string | null = null;
  private cursor: string | null = null;
  private fresh = new Map<string, number>();
  private widths = COLUMNS.map((c) => c.width);
  private shown: ColumnSpec[] = COLUMNS;
  private rows: VirtualRows;
  private header: HTMLElement;
  private counter: HTMLElement;
  private live: HTMLElement;
  private empty: HTMLElement;
  private findingSelect: HTMLSelectElement;
  private clusterOptions = "";

  constructor(private channel: Channel, private onOpen: (traceId: string) => void, private isLive = true) {
    this.counter = h("span", { class: "halo-count" });
    this.live = h("span", { class: "halo-live", title: "Updates as spans arrive" });
    const search = h("input", {
      class: "halo-input", type: "search",
      placeholder: "Search names, tools, arguments, input, output…", "aria-label": "Search traces",
      title: "Matches trace names, ids and services, and the name, tool, arguments, input and output of every span",
    });
    search.addEventListener("input", () => this.search(search.value));
    search.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown" || event.key === "Enter") {
        event.preventDefault();
        this.moveCursor(0, true);
        this.rows.viewport.focus();
        if (event.key === "Enter" && this.cursor) this.open(this.cursor);
      }
    });
    const status = h("select", { class: "halo-select", "aria-label": "Status filter", "data-filter": "status" },
      h("option", { value: "all" }, "All statuses"),
      h("option", { value: "error" }, "Errors"),
      h("option", { value: "ok" }, "OK"),
      h("option", { value: "unset" }, "Unset"),
      h("option", { value: "running" }, "Running"));
    status.addEventListener("change", () => {
      this.status = status.value;
      this.apply();
    });
    this.findingSelect = h("select", { class: "halo-select", "aria-label": "Findings filter", "data-filter": "findings" });
    this.findingSelect.addEventListener("change", () => {
      this.findings = this.findingSelect.value;
      this.apply();
    });
    this.fillFindingOptions([]);
    this.header = h("div", { class: "halo-grid halo-header halo-traces-grid", role: "row" });
    this.rows = new VirtualRows(26, (i, row) => this.renderRow(i, row), "halo-traces-body");
    this.rows.viewport.tabIndex = 0;
    this.rows.viewport.setAttribute("aria-label", "Traces: ↑/↓ to move, Enter to open");
    this.rows.viewport.addEventListener("click", (event) => {
      const row = (event.target as HTMLElement).closest(".halo-row") as HTMLElement | null;
      if (!row) return;
      const traceId = this.str("trace_id", this.order[Number(row.dataset.index)]);
      if (traceId) this.open(traceId);
    });
    this.rows.viewport.addEventListener("keydown", (event) => this.onKey(event));
    this.empty = h("div", { class: "halo-empty" }, "No traces yet. Point an OTLP exporter at the collector; traces appear here as they arrive.");
    const legend = h("span", { class: "halo-legend-inline" },
      h("span", { class: "halo-swatch halo-swatch-error" }), "error run",
      isLive ? h("span", { class: "halo-swatch halo-swatch-fresh" }) : null, isLive ? "just arrived" : null,
      h("span", { class: "halo-dim" }, "findings:"), severityBadge("high"), severityBadge("medium"), severityBadge("low"));
    this.el = h("div", { class: "halo-tracelist" },
      h("div", { class: "halo-toolbar" }, search, status, this.findingSelect, this.counter, legend, this.live),
      this.header, this.rows.viewport, this.empty);
    this.applyWidths();
    this.renderHeader();
    new ResizeObserver(() => this.fitColumns()).observe(this.el);
    channel.on("traces", (content, buffers) => this.receive(content, buffers));
    channel.on("searched", (content) => this.searched(content));
  }

  num(key: string, i: number): number {
    const col = this.cols[key];
    return col ? (col[i] as number) : NaN;
  }

  str(key: string, i: number): string | null {
    const col = this.cols[key];
    return col ? (col[i] as string | null) : null;
  }

  select(traceId: string | null): void {
    this.selected = traceId;
    this.cursor = traceId;
    this.rows.refresh();
  }

  private open(traceId: string): void {
    this.select(traceId);
    this.onOpen(traceId);
  }

  private onKey(event: KeyboardEvent): void {
    const page = Math.max(1, Math.floor(this.rows.viewport.clientHeight / 26) - 1);
    const moves: Record<string, () => void> = {
      ArrowDown: () => this.moveCursor(1), ArrowUp: () => this.moveCursor(-1),
      PageDown: () => this.moveCursor(page), PageUp: () => this.moveCursor(-page),
      Home: () => this.moveCursor(-this.order.length), End: () => this.moveCursor(this.order.length),
      Enter: () => this.cursor && this.open(this.cursor),
    };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    event.stopPropagation();
    move();
  }

  /** Move the keyboard cursor by `delta` rows (`reset`: to the first row). */
  private moveCursor(delta: number, reset = false): void {
    if (!this.order.length) return;
    const current = this.cursor === null || reset ? -1 : this.position(this.cursor);
    const next = current < 0 ? 0 : Math.min(this.order.length - 1, Math.max(0, current + delta));
    this.cursor = this.str("trace_id", this.order[next]);
    this.rows.scrollToRow(next);
    this.rows.refresh();
  }

  private position(traceId: string): number {
    const i = this.index.get(traceId);
    return i === undefined ? -1 : this.order.indexOf(i);
  }

  private search(value: string): void {
    this.text = value.trim().toLowerCase();
    this.spanMatches = null;
    clearTimeout(this.searchTimer);
    const seq = ++this.searchSeq;
    if (this.text) {
      this.searchTimer = window.setTimeout(
        () => this.channel.request({ type: "search", text: this.text, seq }), SEARCH_DELAY_MS);
    }
    this.apply();
  }

  private searched(content: any): void {
    if (content.seq !== this.searchSeq) return;
    this.spanMatches = new Set(content.trace_ids ?? []);
    this.apply();
  }

  private receive(content: any, buffers: DataView[]): void {
    const frame = decodeFrame(buffers[0]);
    if (content.mode === "replace") {
      this.cols = {};
      this.index.clear();
      for (const [key, values] of Object.entries(frame.columns)) this.cols[key] = Array.from(values);
      this.cols.trace_id?.forEach((id: string, i: number) => this.index.set(id, i));
    } else {
      this.merge(frame.columns, frame.length);
    }
    for (const removed of content.removed ?? []) this.remove(removed);
    if (this.isLive) this.live.textContent = `● live · updated ${new Date().toLocaleTimeString()}`;
    this.apply();
  }

  private merge(columns: Record<string, any[] | Float64Array>, length: number): void {
    const ids = columns.trace_id as string[];
    const now = performance.now();
    for (let r = 0; r < length; r++) {
      let i = this.index.get(ids[r]);
      if (i === undefined) {
        i = this.cols.trace_id ? this.cols.trace_id.length : 0;
        this.index.set(ids[r], i);
      }
      for (const [key, values] of Object.entries(columns)) {
        (this.cols[key] ??= [])[i] = values[r];
      }
      this.fresh.set(ids[r], now);
    }
  }

  private remove(traceId: string): void {
    const i = this.index.get(traceId);
    if (i === undefined) return;
    const last = this.cols.trace_id.length - 1;
    for (const values of Object.values(this.cols)) {
      values[i] = values[last];
      values.length = last;
    }
    this.index.delete(traceId);
    if (i !== last) this.index.set(this.cols.trace_id[i], i);
  }

  private applyWidths(): void {
    const widths = this.shown.map((col) => this.widths[COLUMNS.indexOf(col)]);
    this.el.style.setProperty("--halo-trace-cols", widths.join(" "));
  }

  /** Leave out the least useful columns while the list is narrower than their widths. */
  private fitColumns(): void {
    const available = this.el.clientWidth - 14;
    if (available <= 0) return;
    const need = (cols: ColumnSpec[]) => cols.reduce((sum, col) => {
      const px = /^(\d+)px$/.exec(this.widths[COLUMNS.indexOf(col)]);
      return sum + (px ? Number(px[1]) : FLEX_MIN_PX);
    }, 0);
    let shown = COLUMNS;
    for (const key of DROP_ORDER) {
      if (need(shown) <= available) break;
      shown = shown.filter((col) => col.key !== key);
    }
    if (shown.length === this.shown.length) return;
    this.shown = shown;
    this.applyWidths();
    this.renderHeader();
    this.rows.refresh();
  }

  private renderHeader(): void {
    clear(this.header);
    this.shown.forEach((col) => {
      const k = COLUMNS.indexOf(col);
      const arrow = col.key === this.sortKey ? (this.sortDir > 0 ? " ▲" : " ▼") : "";
      const cell = h("button", {
        class: `halo-cell halo-sort${alignRight(col) ? " halo-num" : ""}`, type: "button",
        "data-key": col.key, "aria-sort": arrow ? (this.sortDir > 0 ? "ascending" : "descending") : "none",
        title: `${col.title ? `${col.title}. ` : ""}Sort by ${col.label.toLowerCase()}`,
      }, col.label + arrow);
      cell.addEventListener("click", () => {
        if (this.sortKey === col.key) this.sortDir = -this.sortDir;
        else {
          this.sortKey = col.key;
          this.sortDir = col.numeric ? -1 : 1;
        }
        this.renderHeader();
        this.apply();
      });
      const handle = h("span", { class: "halo-col-resize", title: "Drag to resize", "data-resize": col.key });
      handle.addEventListener("click", (event) => event.stopPropagation());
      handle.addEventListener("mousedown", (down) => {
        down.preventDefault();
        down.stopPropagation();
        const startWidth = cell.getBoundingClientRect().width;
        const move = (event: MouseEvent) => {
          this.widths[k] = `${Math.max(36, Math.round(startWidth + event.clientX - down.clientX))}px`;
          this.applyWidths();
        };
        const up = () => {
          window.removeEventListener("mousemove", move);
          window.removeEventListener("mouseup", up);
          this.fitColumns();
        };
        window.addEventListener("mousemove", move);
        window.addEventListener("mouseup", up);
      });
      this.header.appendChild(h("div", { class: "halo-head-cell" }, cell, handle));
    });
  }

  /** The findings filter's options: fixed ones, then one per failure cluster present. */
  private fillFindingOptions(clusters: [string, string][]): void {
    const key = JSON.stringify(clusters);
    if (key === this.clusterOptions && this.findingSelect.options.length) return;
    this.clusterOptions = key;
    const current = this.findingSelect.value || this.findings;
    this.findingSelect.replaceChildren(
      h("option", { value: "all" }, "All findings"),
      h("option", { value: "any" }, "With findings"),
      h("option", { value: "none" }, "Without findings"),
      h("option", { value: "sev:high" }, "High or critical"),
      h("option", { value: "sev:medium" }, "Medium or worse"),
      h("option", { value: "clustered" }, "In a failure cluster"),
      ...clusters.map(([id, title]) => h("option", { value: `cluster:${id}` }, `Cluster ${id}: ${title}`)));
    const values = Array.from(this.findingSelect.options).map((o) => o.value);
    this.findings = values.includes(current) ? current : "all";
    this.findingSelect.value = this.findings;
  }

  private keepFinding(i: number, findingCount: any[], severity: any[], cluster: any[]): boolean {
    const f = this.findings;
    if (f === "all") return true;
    const count = findingCount[i] > 0;
    if (f === "any") return count;
    if (f === "none") return !count;
    if (f === "clustered") return !!cluster[i];
    if (f.startsWith("sev:")) return count && (SEVERITY_RANK[severity[i]] ?? 9) <= SEVERITY_RANK[f.slice(4)];
    if (f.startsWith("cluster:")) return cluster[i] === f.slice(8);
    return true;
  }

  private sortValues(): { values: any[]; numeric: boolean } {
    if (this.sortKey !== "findings") {
      return { values: this.cols[this.sortKey] ?? [], numeric: !!COLUMNS.find((c) => c.key === this.sortKey)?.numeric };
    }
    // Worst severity first, then the number of findings.
    const counts = this.cols.finding_count ?? [];
    const severity = this.cols.worst_severity ?? [];
    const values = counts.map((count: number, i: number) =>
      count > 0 ? (SEVERITY_ORDER.length - (SEVERITY_RANK[severity[i]] ?? 4)) * 1e6 + count : NaN);
    return { values, numeric: true };
  }

  /** Filter, then sort, into `order` (indices into the columns). */
  private apply(): void {
    const total = this.cols.trace_id ? this.cols.trace_id.length : 0;
    const keep: number[] = [];
    const text = this.text;
    const status = this.status;
    const statuses = this.cols.status ?? [];
    const ended = this.cols.ended ?? [];
    const ids = this.cols.trace_id ?? [];
    const findingCount = this.cols.finding_count ?? [];
    const severity = this.cols.worst_severity ?? [];
    const cluster = this.cols.cluster_id ?? [];
    const titles = this.cols.cluster_title ?? [];
    const clusters = new Map<string, string>();
    for (let i = 0; i < total; i++) if (cluster[i]) clusters.set(cluster[i], titles[i] ?? "");
    this.fillFindingOptions([...clusters.entries()].sort());
    const haystacks = ["name", "trace_id", "service", "input_preview", "output_preview", "cluster_title"]
      .map((k) => this.cols[k] ?? []);
    const spanMatches = this.spanMatches;
    for (let i = 0; i < total; i++) {
      if (status === "running" ? ended[i] !== 0 : status !== "all" && statuses[i] !== status) continue;
      if (!this.keepFinding(i, findingCount, severity, cluster)) continue;
      if (text && !(spanMatches?.has(ids[i]) || haystacks.some((col) => (col[i] ?? "").toLowerCase().includes(text)))) continue;
      keep.push(i);
    }
    const { values, numeric } = this.sortValues();
    const dir = this.sortDir;
    keep.sort(numeric
      ? (a, b) => {
        const x = values[a], y = values[b];
        if (Number.isNaN(x)) return Number.isNaN(y) ? 0 : 1;
        if (Number.isNaN(y)) return -1;
        return (x - y) * dir;
      }
      : (a, b) => {
        const x = values[a] ?? "", y = values[b] ?? "";
        return x < y ? -dir : x > y ? dir : 0;
      });
    this.order = Int32Array.from(keep);
    const pending = text && spanMatches === null ? " · searching spans…" : "";
    this.counter.textContent = (keep.length === total
      ? `${fmtInt(total)} traces` : `${fmtInt(keep.length)} of ${fmtInt(total)} traces`) + pending;
    this.empty.style.display = total === 0 ? "" : "none";
    this.rows.setCount(this.order.length);
  }

  private renderRow(index: number, row: HTMLDivElement): void {
    const i = this.order[index];
    const traceId = this.str("trace_id", i) ?? "";
    const status = this.str("status", i);
    const freshAt = this.fresh.get(traceId);
    row.className = "halo-row halo-grid halo-traces-grid" +
      (status === "error" ? " halo-error" : "") +
      (traceId === this.selected ? " halo-selected" : "") +
      (traceId === this.cursor ? " halo-cursor" : "") +
      (this.num("finding_count", i) > 0 ? ` halo-has-findings halo-worst-${this.str("worst_severity", i)}` : "") +
      (freshAt !== undefined && performance.now() - freshAt < 3000 ? " halo-fresh" : "");
    row.dataset.traceId = traceId;
    const shown = this.shown;
    const layout = String(shown.length);
    if (row.dataset.layout !== layout) {
      row.dataset.layout = layout;
      clear(row);
      for (const col of shown) {
        row.appendChild(h("div", { class: `halo-cell${alignRight(col) ? " halo-num" : ""}`, "data-col": col.key }));
      }
    }
    // Pool rows keep their cells; only their content changes as they scroll into view.
    for (let k = 0; k < shown.length; k++) {
      const cell = row.children[k] as HTMLElement;
      const value = shown[k].render(this, i);
      if (typeof value === "string") cell.textContent = value;
      else cell.replaceChildren(value);
    }
  }
}
