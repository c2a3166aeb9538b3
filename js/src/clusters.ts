/** Failure clusters and insights: the analysis result, each linked to its evidence traces. */
import { decodeFrame, type Frame } from "./arrow";
import type { Channel } from "./channel";
import { clear, fmtInt, h, severityBadge, shortId } from "./util";

export type OpenTrace = (traceId: string, clusterId: string | null, spanId?: string | null) => void;

export interface Evidence {
  trace_id: string;
  span_id: string;
  name: string;
  excerpt: string;
}

export interface Analysis {
  systemic: boolean;
  note: string;
  modelStatus: string;
  totalTraces: number;
  clusters: Frame;
  hypotheses: Frame;
  /** cluster id → evidence spans with a short excerpt of what they say. */
  evidence: Record<string, Evidence[]>;
  /** cluster id → the decisive step of its failed traces (from the analysis' blame). */
  decisive: Record<string, { name: string; agent: string | null; traces: number; reasons: string[] }>;
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
        evidence: content.evidence ?? {}, decisive: content.decisive ?? {},
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

const SHOWN_TRACES = 10;

/** Every trace of a cluster as a link; past the first few behind a "+N more" toggle. */
function traceChips(ids: string[], clusterId: string | null, open: OpenTrace): HTMLElement {
  const chip = (id: string) => h("button", {
    class: "halo-chip", type: "button", title: `Open trace ${id}`, "data-trace-id": id,
    onclick: () => open(id, clusterId),
  }, shortId(id));
  const box = h("span", { class: "halo-chips" }, ...ids.slice(0, SHOWN_TRACES).map(chip));
  if (ids.length > SHOWN_TRACES) {
    const more = h("button", { class: "halo-link", type: "button" }, `+${ids.length - SHOWN_TRACES} more`);
    more.addEventListener("click", () => more.replaceWith(...ids.slice(SHOWN_TRACES).map(chip)));
    box.appendChild(more);
  }
  return box;
}

/** Cluster titles made unique: a title two clusters share gets where each one happens. */
export function displayTitles(c: Frame): string[] {
  const titles: string[] = [];
  for (let i = 0; i < c.length; i++) titles.push(col(c, "title", i) || col(c, "detector", i) || String(col(c, "cluster_id", i)));
  const seen = new Map<string, number>();
  for (const t of titles) seen.set(t, (seen.get(t) ?? 0) + 1);
  return titles.map((t, i) => {
    if ((seen.get(t) ?? 0) < 2) return t;
    const path = String(col(c, "span_path", i) ?? "").split("/").filter(Boolean);
    const where = path[path.length - 1] ?? col(c, "detector", i);
    return `${t} · at ${where}`;
  });
}

/** A signature ("detector|span/path|detail") in words: "retry loop at lookup_order (after error)". */
export function plainSignature(signature: string): string {
  const [detector, path = "", ...rest] = signature.split("|");
  const steps = path.split("/").filter(Boolean);
  const where = (steps[steps.length - 1] ?? "").replace(/^(tool|llm):/, "");
  const detail = rest.filter(Boolean).join(", ").replace(/_/g, " ");
  return `${detector.replace(/_/g, " ")}${where ? ` at ${where}` : ""}${detail ? ` (${detail})` : ""}`;
}

const FIGURES: Record<string, string> = {
  Prevalence: "Share of the analysed traces that show this failure (and how many they are).",
  Failed: "How many of the cluster's traces failed: an error, a missing root output, failure words, or nothing found.",
  Lift: "The cluster's failure rate divided by the failure rate of all analysed traces: 1 means no link to failure, 2 twice as likely to fail.",
};

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
    const titles = displayTitles(c);
    const head = (label: string) => h("th", FIGURES[label] ? { title: FIGURES[label], class: "halo-explained" } : null,
      label, FIGURES[label] ? h("span", { class: "halo-info", "aria-hidden": "true" }, "?") : null);
    const table = h("table", { class: "halo-table" },
      h("thead", null, h("tr", null, ...["Severity", "Failure", "Prevalence", "Failed", "Lift", "Traces"].map(head))));
    const body = h("tbody");
    for (let i = 0; i < c.length; i++) {
      const id = String(col(c, "cluster_id", i));
      const share = col(c, "prevalence", i) as number;
      const chain = (col(c, "causal_chain", i) ?? []) as string[];
      const count = col(c, "trace_count", i) as number;
      const failed = col(c, "failed_trace_count", i) as number;
      const lift = col(c, "lift", i) as number;
      const traces = ((col(c, "trace_ids", i) ?? []) as string[]).length
        ? col(c, "trace_ids", i) as string[] : (col(c, "example_trace_ids", i) ?? []) as string[];
      body.appendChild(h("tr", { class: "halo-cluster", "data-cluster-id": id },
        h("td", null, severityBadge(col(c, "severity", i))),
        h("td", null,
          h("div", { class: "halo-title halo-cluster-title" }, titles[i]),
          chain.length ? h("div", { class: "halo-dim" }, `what happens: ${chain.map(plainSignature).join(" → ")}`) : null,
          col(c, "earliest_signal", i) ? h("div", { class: "halo-dim" }, `first sign: ${plainSignature(col(c, "earliest_signal", i))}`) : null,
          h("details", { class: "halo-signature" }, h("summary", { class: "halo-dim" }, `cluster ${id} · ${col(c, "detector", i)}`),
            h("div", { class: "halo-mono" }, col(c, "signature", i)))),
        h("td", { class: "halo-prevalence", title: FIGURES.Prevalence },
          h("div", { class: "halo-meter" }, h("div", { style: { width: `${Math.min(100, share * 100)}%` } })),
          `${(share * 100).toFixed(1)}% · ${fmtInt(count)}${a.totalTraces ? ` of ${fmtInt(a.totalTraces)}` : ""} traces`),
        h("td", { class: "halo-num", title: `${fmtInt(failed)} of the cluster's ${fmtInt(count)} traces failed` }, fmtInt(failed)),
        h("td", { class: "halo-num", title: FIGURES.Lift }, Number.isFinite(lift) ? `${lift.toFixed(2)}×` : "–"),
        h("td", null, traceChips(traces, id, this.open))));
    }
    table.appendChild(body);
    this.el.appendChild(table);
    this.el.appendChild(h("div", { class: "halo-dim halo-figures-help" },
      ...Object.entries(FIGURES).map(([label, text]) => h("div", null, h("b", null, `${label}: `), text))));
  }
}

function evidenceList(items: Evidence[], clusterId: string, open: OpenTrace): HTMLElement {
  return h("ul", { class: "halo-evidence-list" }, ...items.map((e) => h("li", null,
    h("button", {
      class: "halo-link halo-evidence-link", type: "button", "data-span-id": e.span_id,
      title: `Open span ${e.span_id} in trace ${e.trace_id}`, onclick: () => open(e.trace_id, clusterId, e.span_id),
    }, `${e.name} · ${shortId(e.trace_id)}`),
    e.excerpt ? h("span", { class: "halo-excerpt" }, ` ${e.excerpt}`) : null)));
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
    const titles = displayTitles(clusters);
    const clusterRow = new Map<string, number>();
    for (let i = 0; i < clusters.length; i++) clusterRow.set(String(col(clusters, "cluster_id", i)), i);
    if (!hyp.length) {
      this.el.appendChild(h("div", { class: "halo-empty" }, "No systemic finding to explain."));
      return;
    }
    // The clusters' order: severity, then prevalence.
    const order = Array.from({ length: hyp.length }, (_, i) => i).sort((x, y) =>
      (clusterRow.get(String(col(hyp, "cluster_id", x))) ?? 1e9) - (clusterRow.get(String(col(hyp, "cluster_id", y))) ?? 1e9));
    for (const i of order) {
      const clusterId = String(col(hyp, "cluster_id", i));
      const ci = clusterRow.get(clusterId);
      const confidence = col(hyp, "confidence", i) as number;
      const spans = (col(hyp, "evidence_span_ids", i) ?? []) as string[];
      const narrative = col(hyp, "narrative", i) as string | null;
      const evidence = a.evidence[clusterId] ?? [];
      const decisive = a.decisive[clusterId];
      this.el.appendChild(h("div", { class: "halo-card halo-insight", "data-cluster-id": clusterId },
        h("div", { class: "halo-card-head" },
          ci !== undefined ? severityBadge(col(clusters, "severity", ci)) : null,
          h("span", { class: "halo-title" }, ci !== undefined ? titles[ci] : col(hyp, "title", i) || clusterId),
          ci !== undefined ? h("span", { class: "halo-dim", title: FIGURES.Prevalence },
            `${((col(clusters, "prevalence", ci) as number) * 100).toFixed(1)}% of traces · ${fmtInt(col(clusters, "trace_count", ci))} traces`) : null),
        h("div", { class: "halo-hypothesis" }, col(hyp, "hypothesis", i)),
        h("div", { class: "halo-fix" }, h("b", null, "Suggested fix: "), col(hyp, "suggested_fix", i)),
        decisive ? h("div", { class: "halo-decisive-step" }, h("b", null, "◆ Decisive step: "),
          `${decisive.name}${decisive.agent ? ` (agent ${decisive.agent})` : ""} in ${fmtInt(decisive.traces)} failed trace${decisive.traces === 1 ? "" : "s"}`,
          decisive.reasons.length ? h("span", { class: "halo-dim" }, ` · ${decisive.reasons.join("; ")}`) : null) : null,
        h("div", { class: "halo-confidence", title: "How strongly the rule's evidence supports the hypothesis" }, "Confidence ",
          h("span", { class: "halo-meter" }, h("div", { style: { width: `${Math.min(100, confidence * 100)}%` } })),
          ` ${(confidence * 100).toFixed(0)}%`,
          col(hyp, "rule", i) ? h("span", { class: "halo-dim" }, ` · rule ${col(hyp, "rule", i)}`) : null),
        narrative ? h("blockquote", { class: "halo-narrative" }, h("b", null, "Model narrative: "), narrative) : null,
        h("div", { class: "halo-evidence" },
          `Evidence: ${fmtInt(spans.length)} span${spans.length === 1 ? "" : "s"} in `,
          traceChips(col(hyp, "evidence_trace_ids", i) ?? [], clusterId, this.open),
          evidence.length ? evidenceList(evidence, clusterId, this.open) : null)));
    }
  }
}
