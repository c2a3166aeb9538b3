/** A scrolling viewport that keeps only the visible rows in the DOM. */
import { h } from "./util";

export class VirtualRows {
  readonly viewport: HTMLDivElement;
  private spacer: HTMLDivElement;
  private pool: HTMLDivElement[] = [];
  private assigned: number[] = [];
  private count = 0;
  private frame = 0;

  constructor(
    private rowHeight: number,
    private renderRow: (index: number, row: HTMLDivElement) => void,
    className: string,
  ) {
    this.spacer = h("div", { class: "halo-spacer" });
    this.viewport = h("div", { class: `halo-viewport ${className}` }, this.spacer);
    this.viewport.addEventListener("scroll", () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(this.viewport);
  }

  setCount(count: number): void {
    this.count = count;
    this.spacer.style.height = `${count * this.rowHeight}px`;
    this.refresh();
  }

  /** Repaint every visible row (data changed). */
  refresh(): void {
    this.assigned.fill(-1);
    this.paint();
  }

  scrollToRow(index: number): void {
    const top = index * this.rowHeight;
    const { scrollTop, clientHeight } = this.viewport;
    if (top < scrollTop) this.viewport.scrollTop = top;
    else if (top + this.rowHeight > scrollTop + clientHeight) {
      this.viewport.scrollTop = top + this.rowHeight - clientHeight;
    }
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.paint();
    });
  }

  private paint(): void {
    const height = this.viewport.clientHeight || 400;
    const first = Math.max(0, Math.floor(this.viewport.scrollTop / this.rowHeight) - 4);
    const visible = Math.ceil(height / this.rowHeight) + 8;
    const last = Math.min(this.count, first + visible);
    if (this.pool.length < visible) {
      while (this.pool.length < visible) {
        const row = h("div", { class: "halo-row", role: "row" });
        row.style.height = `${this.rowHeight}px`;
        this.pool.push(row);
        this.viewport.appendChild(row);
      }
      this.assigned = new Array(this.pool.length).fill(-1);
    }
    // A ring: row i always lives in slot i % pool size, so scrolling by k rows repaints
    // only the k rows that came into view.
    const size = this.pool.length;
    const wanted = new Int32Array(size).fill(-2);
    for (let index = first; index < last; index++) wanted[index % size] = index;
    for (let slot = 0; slot < size; slot++) {
      const index = wanted[slot];
      const row = this.pool[slot];
      if (index === this.assigned[slot]) continue;
      this.assigned[slot] = index;
      if (index < 0) {
        row.style.display = "none";
        continue;
      }
      row.style.display = "";
      row.style.transform = `translateY(${index * this.rowHeight}px)`;
      row.dataset.index = String(index);
      this.renderRow(index, row);
    }
  }
}
