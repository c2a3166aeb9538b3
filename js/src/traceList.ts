/** The trace list: one row per trace, sortable, filterable, virtualised, live. */
import { decodeFrame } from "./arrow";
import type { Channel } from "./channel";
import { clear, fmtDuration, fmtInt, fmtTime, h, shortId, statusBadge } from "./util";
import { VirtualRows } from "./virtual";

interface ColumnSpec {
  key: string;
  label: string;
  /** Sorts as a number (and is right-aligned, except the start time). */
  numeric: boolean;
  render: (list: TraceList, i: number) => Node | string;
}

const COLUMNS: ColumnSpec[] = [
  { key: "start_ms", label: "Started", numeric: true, render: (l, i) => fmtTime(l.num("start_ms", i)) },
  {
    key: "name", label: "Name", numeric: false,
    render: (l, i) => h("span", { class: "halo-ellipsis", title: l.str("preview", i) || "" },
      l.str("name", i) || "(unnamed)", h("span", { class: "halo-dim" }, ` ${shortId(l.str("trace_id", i))}`)),
  },
  { key: "service", label: "Service", numeric: false, render: (l, i) => l.str("service", i) || "" },
  { key: "duration_ms", label: "Duration", numeric: true, render: (l, i) => fmtDuration(l.num("duration_ms", i)) },
  { key: "span_count", label: "Spans", numeric: true, render: (l, i) => fmtInt(l.num("span_count", i)) },
  { key: "llm_count", label: "LLM", numeric: true, render: (l, i) => fmtInt(l.num("llm_count", i)) },
  { key: "tool_count", label: "Tools", numeric: true, render: (l, i) => fmtInt(l.num("tool_count", i)) },
  { key: "tokens_total", label: "Tokens", numeric: true, render: (l, i) => fmtInt(l.num("tokens_total", i)) },
  { key: "error_count", label: "Errors", numeric: true, render: (l, i) => fmtInt(l.num("error_count", i)) },
  { key: "status", label: "Status", numeric: false, render: (l, i) => statusBadge(l.str("status", i)) },
];

function alignRight(col: ColumnSpec): boolean {
  return col.numeric && col.key !== "start_ms";
}

export class TraceList {
  readonly el: HTMLElement;
  private cols: Record<string, any[]> = {};
  private index = new Map<string, number>();
  private order: Int32Array = new Int32Array(0);
  private sortKey = "start_ms";
  private sortDir = -1;
  private text = "";
  private status = "all";
  private selected: string | null = null;
  private fresh = new Map<string, number>();
  private rows: VirtualRows;
  private header: HTMLElement;
  private counter: HTMLElement;
  private live: HTMLElement;
  private empty: HTMLElement;

  constructor(private channel: Channel, private onOpen: (traceId: string) => void) {
    this.counter = h("span", { class: "halo-count" });
    this.live = h("span", { class: "halo-live", title: "Updates as spans arrive" });
    const search = h("input", {
      class: "halo-input", type: "search", placeholder: "Filter by name, id, service, input…",
      "aria-label": "Filter traces",
    });
    search.addEventListener("input", () => {
      this.text = search.value.trim().toLowerCase();
      this.apply();
    });
    const status = h("select", { class: "halo-select", "aria-label": "Status filter" },
      h("option", { value: "all" }, "All statuses"),
      h("option", { value: "error" }, "Errors"),
      h("option", { value: "ok" }, "OK"),
      h("option", { value: "unset" }, "Unset"),
      h("option", { value: "running" }, "Running"));
    status.addEventListener("change", () => {
      this.status = status.value;
      this.apply();
    });
    this.header = h("div", { class: "halo-grid halo-header halo-traces-grid", role: "row" });
    this.rows = new VirtualRows(26, (i, row) => this.renderRow(i, row), "halo-traces-body");
    this.rows.viewport.addEventListener("click", (event) => {
      const row = (event.target as HTMLElement).closest(".halo-row") as HTMLElement | null;
      if (!row) return;
      const traceId = this.str("trace_id", this.order[Number(row.dataset.index)]);
      if (traceId) this.open(traceId);
    });
    this.empty = h("div", { class: "halo-empty" }, "No traces yet. Point an OTLP exporter at the collector; traces appear here as they arrive.");
    this.el = h("div", { class: "halo-tracelist" },
      h("div", { class: "halo-toolbar" }, search, status, this.counter, this.live),
      this.header, this.rows.viewport, this.empty);
    this.renderHeader();
    channel.on("traces", (content, buffers) => this.receive(content, buffers));
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
    this.rows.refresh();
  }

  private open(traceId: string): void {
    this.select(traceId);
    this.onOpen(traceId);
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
    const when = new Date();
    this.live.textContent = `● live · updated ${when.toLocaleTimeString()}`;
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

  private renderHeader(): void {
    clear(this.header);
    for (const col of COLUMNS) {
      const arrow = col.key === this.sortKey ? (this.sortDir > 0 ? " ▲" : " ▼") : "";
      const cell = h("button", {
        class: `halo-cell halo-sort${alignRight(col) ? " halo-num" : ""}`, type: "button",
        "data-key": col.key, "aria-sort": arrow ? (this.sortDir > 0 ? "ascending" : "descending") : "none",
        title: `Sort by ${col.label.toLowerCase()}`,
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
      this.header.appendChild(cell);
    }
  }

  /** Filter, then sort, into `order` (indices into the columns). */
  private apply(): void {
    const total = this.cols.trace_id ? this.cols.trace_id.length : 0;
    const keep: number[] = [];
    const text = this.text;
    const status = this.status;
    const statuses = this.cols.status ?? [];
    const ended = this.cols.ended ?? [];
    const haystacks = ["name", "trace_id", "service", "preview"].map((k) => this.cols[k] ?? []);
    for (let i = 0; i < total; i++) {
      if (status === "running" ? ended[i] !== 0 : status !== "all" && statuses[i] !== status) continue;
      if (text && !haystacks.some((col) => (col[i] ?? "").toLowerCase().includes(text))) continue;
      keep.push(i);
    }
    const values = this.cols[this.sortKey] ?? [];
    const dir = this.sortDir;
    const numeric = COLUMNS.find((c) => c.key === this.sortKey)?.numeric;
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
    this.counter.textContent = keep.length === total
      ? `${fmtInt(total)} traces` : `${fmtInt(keep.length)} of ${fmtInt(total)} traces`;
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
      (freshAt !== undefined && performance.now() - freshAt < 3000 ? " halo-fresh" : "");
    row.dataset.traceId = traceId;
    if (row.childElementCount !== COLUMNS.length) {
      clear(row);
      for (const col of COLUMNS) {
        row.appendChild(h("div", { class: `halo-cell${alignRight(col) ? " halo-num" : ""}`, "data-col": col.key }));
      }
    }
    // Pool rows keep their cells; only their content changes as they scroll into view.
    for (let k = 0; k < COLUMNS.length; k++) {
      const cell = row.children[k] as HTMLElement;
      const value = COLUMNS[k].render(this, i);
      if (typeof value === "string") cell.textContent = value;
      else cell.replaceChildren(value);
    }
  }
}
