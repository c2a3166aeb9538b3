/** Failure clusters and insights: the analysis result, each linked to its evidence traces. */
import { decodeFrame, type Frame } from "./arrow";
import type { Channel } from "./channel";
import { clear, fmtInt, h, severityBadge, shortId } from "./util";

export type OpenTrace = (traceId: string, clusterId: string | null) => void;

export interface Analysis {
  systemic: boolean;
  note: string;
  modelStatus: string;
  totalTraces: number;
  clusters: Frame;
  hypotheses: Frame;
}

/** Holds the latest analysis result and tells views when it arrives. */
export class AnalysisFeed {
  current: Analysis | null = null;
  private listeners: ((a: Analysis) => void)[] = [];

  constructor(channel: Channel) {
    channel.on("analysis", (content, buffers) => {
      this.current = {
        systemic: !!content.systemic, note: content.note ?? "", modelStatus: content.model_status ?? "",
        totalTraces: content.total_traces ?? 0,
        clusters: decodeFrame(buffers[0]), hypotheses: decodeFrame(buffers[1]),
      };
      for (const listener of this.listeners) listener(this.current);
    });
  }

  subscribe(listener: (a: Analysis) => void): void {
    this.listeners.push(listener);
    if (this.current) listener(this.current);
  }
}

function col(frame: Frame, key: string, i: number): any {
  const values = frame.columns[key];
  return values ? values[i] : null;
}

function traceChips(ids: string[], clusterId: string | null, open: OpenTrace): HTMLElement {
  return h("span", { class: "halo-chips" }, ...ids.map((id) =>
    h("button", {
      class: "halo-chip", type: "button", title: `Open trace ${id}`, "data-trace-id": id,
      onclick: () => open(id, clusterId),
    }, shortId(id))));
}

function summary(a: Analysis): HTMLElement {
  return h("div", { class: "halo-summary" },
    h("span", { class: a.systemic ? "halo-pill halo-pill-warn" : "halo-pill" },
      a.systemic ? "systemic failures found" : "no systemic failure"),
    a.note ? h("span", { class: "halo-dim" }, ` ${a.note}`) : null,
    a.modelStatus ? h("span", { class: "halo-dim halo-model-status" }, ` · model: ${a.modelStatus}`) : null);
}

export class ClustersView {
  readonly el: HTMLElement;

  constructor(feed: AnalysisFeed, private open: OpenTrace) {
    this.el = h("div", { class: "halo-clusters halo-scroll" },
      h("div", { class: "halo-empty" }, "Waiting for the analysis…"));
    feed.subscribe((a) => this.render(a));
  }

  private render(a: Analysis): void {
    clear(this.el);
    this.el.appendChild(summary(a));
    const c = a.clusters;
    if (!c.length) {
      this.el.appendChild(h("div", { class: "halo-empty" }, "No failure clusters."));
      return;
    }
    const table = h("table", { class: "halo-table" },
      h("thead", null, h("tr", null, ...["Severity", "Signature", "Prevalence", "Failed", "Lift", "Example traces"]
        .map((label) => h("th", null, label)))));
    const body = h("tbody");
    for (let i = 0; i < c.length; i++) {
      const id = String(col(c, "cluster_id", i));
      const share = col(c, "prevalence", i) as number;
      const chain = (col(c, "causal_chain", i) ?? []) as string[];
      body.appendChild(h("tr", { class: "halo-cluster", "data-cluster-id": id },
        h("td", null, severityBadge(col(c, "severity", i))),
        h("td", null,
          col(c, "title", i) ? h("div", { class: "halo-title" }, col(c, "title", i)) : null,
          h("div", { class: "halo-mono" }, col(c, "signature", i)),
          h("div", { class: "halo-dim" }, `${col(c, "detector", i)} · ${col(c, "span_path", i) ?? ""}`),
          chain.length ? h("div", { class: "halo-dim" }, `causal chain: ${chain.join(" → ")}`) : null,
          col(c, "earliest_signal", i) ? h("div", { class: "halo-dim" }, `earliest signal: ${col(c, "earliest_signal", i)}`) : null),
        h("td", { class: "halo-prevalence" },
          h("div", { class: "halo-meter" }, h("div", { style: { width: `${Math.min(100, share * 100)}%` } })),
          `${(share * 100).toFixed(1)}% · ${fmtInt(col(c, "trace_count", i))}${a.totalTraces ? ` of ${fmtInt(a.totalTraces)}` : ""} traces`),
        h("td", { class: "halo-num" }, fmtInt(col(c, "failed_trace_count", i))),
        h("td", { class: "halo-num" }, Number.isFinite(col(c, "lift", i)) ? (col(c, "lift", i) as number).toFixed(2) : "–"),
        h("td", null, traceChips(col(c, "example_trace_ids", i) ?? [], id, this.open))));
    }
    table.appendChild(body);
    this.el.appendChild(table);
  }
}

export class InsightsView {
  readonly el: HTMLElement;

  constructor(feed: AnalysisFeed, private open: OpenTrace) {
    this.el = h("div", { class: "halo-insights halo-scroll" },
      h("div", { class: "halo-empty" }, "Waiting for the analysis…"));
    feed.subscribe((a) => this.render(a));
  }

  private render(a: Analysis): void {
    clear(this.el);
    this.el.appendChild(summary(a));
    const hyp = a.hypotheses;
    const clusters = a.clusters;
    const clusterRow = new Map<string, number>();
    for (let i = 0; i < clusters.length; i++) clusterRow.set(String(col(clusters, "cluster_id", i)), i);
    if (!hyp.length) {
      this.el.appendChild(h("div", { class: "halo-empty" }, "No systemic finding to explain."));
      return;
    }
    for (let i = 0; i < hyp.length; i++) {
      const clusterId = String(col(hyp, "cluster_id", i));
      const ci = clusterRow.get(clusterId);
      const confidence = col(hyp, "confidence", i) as number;
      const spans = (col(hyp, "evidence_span_ids", i) ?? []) as string[];
      const narrative = col(hyp, "narrative", i) as string | null;
      this.el.appendChild(h("div", { class: "halo-card halo-insight", "data-cluster-id": clusterId },
        h("div", { class: "halo-card-head" },
          ci !== undefined ? severityBadge(col(clusters, "severity", ci)) : null,
          h("span", { class: "halo-title" }, col(hyp, "title", i) || clusterId),
          h("span", { class: "halo-dim halo-mono halo-ellipsis", title: ci !== undefined ? col(clusters, "signature", ci) : "" },
            ci !== undefined ? col(clusters, "signature", ci) : ""),
          ci !== undefined ? h("span", { class: "halo-dim" },
            `${((col(clusters, "prevalence", ci) as number) * 100).toFixed(1)}% of traces`) : null),
        h("div", { class: "halo-hypothesis" }, col(hyp, "hypothesis", i)),
        h("div", { class: "halo-fix" }, h("b", null, "Suggested fix: "), col(hyp, "suggested_fix", i)),
        h("div", { class: "halo-confidence" }, "Confidence ",
          h("span", { class: "halo-meter" }, h("div", { style: { width: `${Math.min(100, confidence * 100)}%` } })),
          ` ${(confidence * 100).toFixed(0)}%`,
          col(hyp, "rule", i) ? h("span", { class: "halo-dim" }, ` · rule ${col(hyp, "rule", i)}`) : null),
        narrative ? h("blockquote", { class: "halo-narrative" }, h("b", null, "Model narrative: "), narrative) : null,
        h("div", { class: "halo-evidence" },
          `Evidence: ${fmtInt(spans.length)} span${spans.length === 1 ? "" : "s"} in `,
          traceChips(col(hyp, "evidence_trace_ids", i) ?? [], clusterId, this.open),
          spans.length ? h("div", { class: "halo-dim halo-mono" },
            spans.slice(0, 12).map(shortId).join(" ") + (spans.length > 12 ? " …" : "")) : null)));
    }
  }
}
