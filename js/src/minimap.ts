/** The waterfall's minimap: every span of the trace as a thin line on the whole time axis
 * (errors red, flagged spans orange), the zoomed window outlined; drag on it to zoom. */
import { h } from "./util";

export interface MinimapData {
  order: Int32Array;
  start: Float64Array;
  end: Float64Array;
  error: Uint8Array;
  flagged: Uint8Array;
  traceEnd: number;
}

const HEIGHT = 36;

/** A horizontal drag on `target` as fractions of its width; a click (under 4 px) is ignored. */
export function installDrag(target: HTMLElement, track: () => DOMRect, brush: HTMLElement,
                            done: (a: number, b: number) => void,
                            accept: (event: MouseEvent) => boolean = () => true): void {
  target.addEventListener("mousedown", (down) => {
    if (down.button !== 0 || !accept(down)) return;
    const rect = track();
    const fraction = (x: number) => Math.min(1, Math.max(0, (x - rect.left) / rect.width));
    const a = fraction(down.clientX);
    let dragging = false;
    const move = (event: MouseEvent) => {
      if (!dragging && Math.abs(event.clientX - down.clientX) < 4) return;
      if (!dragging) {
        dragging = true;
        brush.style.display = "block";
      }
      const b = fraction(event.clientX);
      brush.style.left = `${Math.min(a, b) * 100}%`;
      brush.style.width = `${Math.abs(b - a) * 100}%`;
      event.preventDefault();
    };
    const up = (event: MouseEvent) => {
      window.removeEventListener("mousemove", move);
      window.removeEventListener("mouseup", up, true);
      brush.style.display = "none";
      if (!dragging) return;
      // A drag is not a click: keep the row under the pointer from being selected.
      const swallow = (click: Event) => { click.stopPropagation(); click.preventDefault(); };
      window.addEventListener("click", swallow, { capture: true, once: true });
      setTimeout(() => window.removeEventListener("click", swallow, true), 0);
      const b = fraction(event.clientX);
      if (Math.abs(b - a) > 0.003) done(Math.min(a, b), Math.max(a, b));
    };
    window.addEventListener("mousemove", move);
    window.addEventListener("mouseup", up, true);
  });
}

export class Minimap {
  readonly el: HTMLElement;
  private canvas: HTMLCanvasElement;
  private window: HTMLElement;
  private data: MinimapData | null = null;
  private z0 = 0;
  private z1 = 1;

  constructor(onZoom: (from: number, to: number) => void) {
    this.canvas = h("canvas", { class: "halo-minimap-canvas" });
    this.window = h("div", { class: "halo-minimap-window" });
    const brush = h("div", { class: "halo-brush" });
    this.el = h("div", { class: "halo-minimap", title: "Whole trace: drag to zoom, double-click for all" },
      this.canvas, this.window, brush);
    installDrag(this.el, () => this.el.getBoundingClientRect(), brush, (a, b) => {
      const end = this.data?.traceEnd ?? 1;
      onZoom(a * end, b * end);
    });
    this.el.addEventListener("dblclick", () => onZoom(0, this.data?.traceEnd ?? 1));
    new ResizeObserver(() => this.draw()).observe(this.el);
  }

  setData(data: MinimapData): void {
    this.data = data;
    this.draw();
  }

  setWindow(z0: number, z1: number): void {
    this.z0 = z0;
    this.z1 = z1;
    const end = this.data?.traceEnd ?? 1;
    this.window.style.left = `${(z0 / end) * 100}%`;
    this.window.style.width = `${Math.max(((z1 - z0) / end) * 100, 0.3)}%`;
  }

  private draw(): void {
    const data = this.data;
    const width = this.el.clientWidth;
    if (!data || width === 0) return;
    const scale = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(width * scale);
    this.canvas.height = Math.round(HEIGHT * scale);
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(scale, 0, 0, scale, 0, 0);
    ctx.clearRect(0, 0, width, HEIGHT);
    const style = getComputedStyle(this.el);
    const colours = [style.getPropertyValue("--halo-fg-dim").trim() || "#888",
      style.getPropertyValue("--halo-warn").trim() || "#f57c00",
      style.getPropertyValue("--halo-error").trim() || "#d32f2f"];
    const n = data.order.length;
    const rowHeight = Math.max(HEIGHT / Math.max(n, 1), 0.5);
    // Draw plain spans first, then flagged, then errors, so the signals stay on top.
    for (let layer = 0; layer < 3; layer++) {
      ctx.fillStyle = colours[layer];
      ctx.globalAlpha = layer === 0 ? 0.55 : 1;
      for (let r = 0; r < n; r++) {
        const i = data.order[r];
        const kind = data.error[i] ? 2 : data.flagged[i] ? 1 : 0;
        if (kind !== layer) continue;
        const end = Number.isFinite(data.end[i]) ? data.end[i] : data.traceEnd;
        const x = (data.start[i] / data.traceEnd) * width;
        const w = Math.max(((end - data.start[i]) / data.traceEnd) * width, layer ? 2 : 1);
        ctx.fillRect(x, (r / Math.max(n, 1)) * HEIGHT, w, Math.max(rowHeight, layer ? 2 : 0.5));
      }
    }
    ctx.globalAlpha = 1;
    this.setWindow(this.z0, this.z1);
  }
}
