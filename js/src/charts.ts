/** Plotly charts. plotly.js is not bundled: the kernel sends the copy that ships with the
 * plotly Python package (once per page), and the static report inlines it. */
import type { Channel } from "./channel";
import { clear, h } from "./util";

declare global {
  interface Window {
    Plotly?: any;
    __haloPlotly?: Promise<any>;
  }
}

function cssVar(el: HTMLElement, name: string, fallback: string): string {
  return getComputedStyle(el).getPropertyValue(name).trim() || fallback;
}

export class ChartsView {
  readonly el: HTMLElement;
  private requested = false;
  private plotlyWaiter: ((source: string) => void) | null = null;

  constructor(private channel: Channel) {
    this.el = h("div", { class: "halo-charts halo-scroll" }, h("div", { class: "halo-empty" }, "Loading charts…"));
    channel.on("charts", (content) => void this.render(content.figures ?? []));
    channel.on("plotly", (content) => this.plotlyWaiter?.(content.source));
  }

  /** Called when the tab is first shown: charts are drawn only when looked at. */
  activate(): void {
    if (this.requested) return;
    this.requested = true;
    this.channel.request({ type: "charts" });
  }

  private plotly(): Promise<any> {
    if (window.Plotly) return Promise.resolve(window.Plotly);
    window.__haloPlotly ??= new Promise((resolve, reject) => {
      this.plotlyWaiter = (source: string) => {
        const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
        const script = document.createElement("script");
        script.src = url;
        script.onload = () => resolve(window.Plotly);
        script.onerror = () => reject(new Error("plotly.js failed to load"));
        document.head.appendChild(script);
      };
      this.channel.request({ type: "plotly" });
    });
    return window.__haloPlotly;
  }

  private async render(figures: { title: string; figure: string }[]): Promise<void> {
    clear(this.el);
    if (!figures.length) {
      this.el.appendChild(h("div", { class: "halo-empty" }, "No data to chart yet."));
      return;
    }
    const Plotly = await this.plotly();
    const color = cssVar(this.el, "--jp-ui-font-color1", "#222");
    const grid = cssVar(this.el, "--jp-border-color2", "#ddd");
    for (const { title, figure } of figures) {
      const spec = JSON.parse(figure);
      const box = h("div", { class: "halo-chart", "data-title": title });
      this.el.appendChild(box);
      const layout = {
        ...spec.layout, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
        font: { ...(spec.layout?.font ?? {}), color },
        xaxis: { ...(spec.layout?.xaxis ?? {}), gridcolor: grid },
        yaxis: { ...(spec.layout?.yaxis ?? {}), gridcolor: grid },
        height: 340, margin: { l: 60, r: 20, t: 40, b: 60 },
      };
      await Plotly.newPlot(box, spec.data, layout, { displaylogo: false, responsive: true });
    }
  }
}
