/** One widget area: the tabs a view needs, with trace selection opening the waterfall in place. */
import type { Channel } from "./channel";
import { AnalysisFeed, ClustersView, InsightsView } from "./clusters";
import { ChartsView } from "./charts";
import { TraceList } from "./traceList";
import { h } from "./util";
import { Waterfall } from "./waterfall";

const TABS: Record<string, string[]> = {
  traces: ["traces", "waterfall"],
  waterfall: ["waterfall"],
  clusters: ["clusters", "waterfall"],
  insights: ["insights", "waterfall"],
  dashboard: ["traces", "waterfall", "clusters", "insights", "charts"],
};
const LABELS: Record<string, string> = {
  traces: "Traces", waterfall: "Waterfall", clusters: "Clusters", insights: "Insights", charts: "Charts",
};

export class App {
  readonly el: HTMLElement;
  private panes = new Map<string, HTMLElement>();
  private buttons = new Map<string, HTMLElement>();
  private waterfall: Waterfall;
  private traceList: TraceList | null = null;
  private charts: ChartsView | null = null;

  /** `live`: the data follows the store (false in the static report). */
  constructor(private channel: Channel, view: string, height: number, live = true) {
    const tabs = TABS[view] ?? TABS.traces;
    const back = tabs[0] !== "waterfall" ? () => this.show(tabs[0]) : null;
    this.waterfall = new Waterfall(channel, back ? LABELS[tabs[0]] : null, back);
    const open = (traceId: string, clusterId: string | null = null, spanId: string | null = null) =>
      this.openTrace(traceId, clusterId, spanId);
    const analysis = tabs.includes("clusters") || tabs.includes("insights") ? new AnalysisFeed(channel) : null;
    for (const tab of tabs) {
      let pane: HTMLElement;
      if (tab === "traces") pane = (this.traceList = new TraceList(channel, (id) => open(id), live)).el;
      else if (tab === "waterfall") pane = this.waterfall.el;
      else if (tab === "clusters") pane = new ClustersView(analysis!, open).el;
      else if (tab === "insights") pane = new InsightsView(analysis!, open).el;
      else pane = (this.charts = new ChartsView(channel)).el;
      pane.classList.add("halo-pane");
      pane.dataset.pane = tab;
      this.panes.set(tab, pane);
    }
    const bar = h("div", { class: "halo-tabs", role: "tablist" });
    for (const tab of tabs) {
      const button = h("button", { class: "halo-tab", type: "button", role: "tab", "data-tab": tab }, LABELS[tab]);
      button.addEventListener("click", () => this.show(tab));
      this.buttons.set(tab, button);
      bar.appendChild(button);
    }
    if (tabs.length < 3) bar.classList.add("halo-tabs-quiet");
    // height 0: fill the page (the static report).
    const css = height > 0 ? `${height}px` : "calc(100vh - 130px)";
    // data-lm-suppress-shortcuts: JupyterLab leaves keys pressed in the view to the view.
    this.el = h("div", { class: "halo-root", style: { height: css }, "data-lm-suppress-shortcuts": "true" },
      tabs.length > 1 ? bar : null, h("div", { class: "halo-panes" }, ...this.panes.values()));
    this.show(tabs[0]);
  }

  openTrace(traceId: string, clusterId: string | null = null, spanId: string | null = null): void {
    this.traceList?.select(traceId);
    this.show("waterfall");
    const extra: Record<string, unknown> = {};
    if (clusterId !== null) extra.cluster_id = clusterId;
    if (spanId) extra.span_id = spanId;
    this.waterfall.load(traceId, extra);
    this.channel.model.set("selected_trace", traceId);
    this.channel.model.save_changes();
  }

  show(tab: string): void {
    for (const [name, pane] of this.panes) pane.style.display = name === tab ? "" : "none";
    for (const [name, button] of this.buttons) button.classList.toggle("halo-tab-active", name === tab);
    if (tab === "charts") this.charts?.activate();
  }

  /** The waterfall view's own trace (the kernel sends it when the view is ready). */
  expectTrace(traceId: string): void {
    this.waterfall.traceId = traceId;
  }

  /** Open a trace in the waterfall tab without leaving the current tab (so no tab is blank). */
  preload(traceId: string): void {
    this.traceList?.select(traceId);
    this.waterfall.load(traceId);
  }
}
