"""A self-contained HTML report of the dashboard: the widget module, the data and
plotly.js all inline, so the file opens in any browser with no server and no network.

The page runs the same front-end module as the notebook widgets. In place of the kernel,
a small stand-in answers the module's requests (open a trace, a span's detail, the
charts) from data embedded in the page.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
from pathlib import Path
from typing import Any

import polars as pl

from .analysis_view import AnalysisView, Message
from .charts import chart_figures
from .payloads import TraceTableFeed, detail_from_row, finding_entry, waterfall_message
from .views import STATIC

MAX_TRACES = 300
MAX_SPANS = 60_000
REPORT_VALUE_CHARS = 20_000


def write_report(store: Any, result: Any, path: Path | str, *, max_traces: int = MAX_TRACES,
                 max_spans: int = MAX_SPANS) -> Path:
    """Write the report to ``path`` and return it. Every trace is in the trace list; the
    waterfalls of the traces the analysis cites and of the most recent others (up to
    ``max_traces`` traces and ``max_spans`` spans) are embedded. The Waterfall tab opens
    on the first failing trace."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"path: the report is an HTML file, expected a .html name, got {path}")
    analysis = AnalysisView.of(result)
    traces = store.traces()
    spans = store.spans()
    cited = _cited(analysis)
    included = _included_traces(traces, cited, max_traces, max_spans)
    data = {
        "model": {"view": "dashboard", "height": 0, "static": True, "selected_trace": "",
                  "trace_id": _first_failing(traces, analysis, cited, included)},
        "ready": [_encode(TraceTableFeed().full(traces, analysis)),
                  _encode(analysis.message(store))],
        "charts": _encode(({"type": "charts",
                            "figures": chart_figures(spans, traces, analysis.clusters)}, [])),
        "waterfalls": {}, "details": {}, "highlights": {},
        "omitted_note": (f"This report embeds the spans of {len(included):,} of "
                         f"{traces.height:,} traces: those the analysis cites and the most "
                         "recent ones. Open the others in the notebook."),
    }
    note = data["omitted_note"] if len(included) < traces.height else ""
    findings = _findings_by_span(analysis.findings)
    chosen = spans.filter(pl.col("trace_id").is_in(included))
    for (trace_id,), trace_spans in chosen.sort("start_ns").group_by("trace_id",
                                                                      maintain_order=True):
        data["waterfalls"][trace_id] = _encode(waterfall_message(trace_spans, trace_id, [],
                                                                 analysis=analysis))
        origin = trace_spans["start_ns"].min()
        data["details"][trace_id] = {
            row["span_id"]: detail_from_row(row, origin, findings.get((trace_id, row["span_id"]),
                                                                      []), REPORT_VALUE_CHARS)
            for row in trace_spans.iter_rows(named=True)}
        for cluster_id in cited.get(trace_id, ()):
            marked = analysis.highlight(cluster_id, trace_spans)
            if marked:
                data["highlights"].setdefault(cluster_id, {})[trace_id] = marked
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_page(data, note, traces.height, len(store)), encoding="utf-8")
    return path


def _first_failing(traces: pl.DataFrame, analysis: AnalysisView, cited: dict[str, set[str]],
                   included: list[str]) -> str:
    """The trace the Waterfall tab opens on: the first cited failed trace, else the first
    failed or erroring one, else the newest embedded one ("" when nothing is embedded)."""
    failed: set[str] = set()
    if analysis.assignments is not None and "failed" in analysis.assignments.columns:
        failed = set(analysis.assignments.filter(pl.col("failed"))["trace_id"].to_list())
    failed |= set(traces.filter(pl.col("status").cast(pl.String) == "error")["trace_id"])
    embedded = set(included)
    for trace_id in [*cited, *traces["trace_id"].to_list()]:
        if trace_id in failed and trace_id in embedded:
            return trace_id
    return included[0] if included else ""


def _cited(analysis: AnalysisView) -> dict[str, set[str]]:
    """trace id → ids of the clusters whose views link to it."""
    cited: dict[str, set[str]] = {}
    for frame, column in ((analysis.clusters, "example_trace_ids"),
                          (analysis.hypotheses, "evidence_trace_ids")):
        if frame is None or column not in frame.columns:
            continue
        for cluster_id, ids in frame.select(pl.col("cluster_id").cast(pl.String),
                                            column).iter_rows():
            for trace_id in ids or []:
                cited.setdefault(trace_id, set()).add(cluster_id)
    return cited


def _included_traces(traces: pl.DataFrame, cited: dict[str, set[str]], max_traces: int,
                     max_spans: int) -> list[str]:
    counts = dict(traces.select("trace_id", "span_count").iter_rows())
    ordered = list(cited) + traces["trace_id"].to_list()  # traces(): newest first
    chosen: dict[str, None] = {}
    total = 0
    for trace_id in ordered:
        if trace_id in chosen or trace_id not in counts:
            continue
        if len(chosen) >= max_traces or total + counts[trace_id] > max_spans:
            break
        chosen[trace_id] = None
        total += counts[trace_id]
    return list(chosen)


def _findings_by_span(findings: pl.DataFrame | None) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    if findings is None:
        return out
    for row in findings.iter_rows(named=True):
        out.setdefault((row["trace_id"], row["span_id"]), []).append(finding_entry(row))
    return out


def _encode(message: Message) -> dict[str, Any]:
    content, buffers = message
    return {"content": content,
            "buffers": [base64.b64encode(b).decode("ascii") for b in buffers]}


# Inside <script>, span text must not end the element (</script>), open a comment that
# swallows the rest of the page (<!--<script), or break JavaScript (U+2028/2029): every
# such character is written as a JSON escape, which JSON.parse reads back unchanged.
_SCRIPT_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                   0x2028: "\\u2028", 0x2029: "\\u2029"}


def script_json(value: Any) -> str:
    """``value`` as JSON that is safe as the text of a <script> element."""
    return json.dumps(value, separators=(",", ":"), default=str).translate(_SCRIPT_ESCAPES)


def _page(data: dict[str, Any], note: str, trace_count: int, span_count: int) -> str:
    from plotly.offline import get_plotlyjs

    module = base64.b64encode((STATIC / "widget.js").read_bytes()).decode("ascii")
    generated = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    subtitle = html.escape(f"{trace_count:,} traces · {span_count:,} spans · generated {generated}")
    plotly_js = get_plotlyjs().replace("</script", "<\\/script")
    return _TEMPLATE.format(subtitle=subtitle, note=f"<p>{html.escape(note)}</p>" if note else "",
                            plotly=plotly_js, module=module, data=script_json(data),
                            bootstrap=_BOOTSTRAP)


_BOOTSTRAP = """
const data = JSON.parse(document.getElementById("halo-data").textContent);
const bytes = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const listeners = new Set();
function emit(message, extra) {
  setTimeout(() => {
    const content = Object.assign({}, message.content, extra || {});
    const buffers = message.buffers.map((b) => new DataView(bytes(b).buffer));
    for (const listener of listeners) listener(content, buffers);
  }, 0);
}
const missing = (type, extra, text) =>
  ({ content: Object.assign({ type, error: text }, extra), buffers: [] });
const model = {
  get: (key) => data.model[key],
  set() {}, save_changes() {},
  on(event, callback) { if (event === "msg:custom") listeners.add(callback); },
  off(event, callback) { listeners.delete(callback); },
  send(request) {
    const { type, trace_id, span_id, cluster_id } = request;
    if (type === "ready") data.ready.forEach((m) => emit(m));
    else if (type === "charts") emit(data.charts);
    else if (type === "open") {
      const message = data.waterfalls[trace_id];
      const marked = (data.highlights[cluster_id] || {})[trace_id] || [];
      if (message) emit(message, { highlight: marked });
      else emit(missing("waterfall", { trace_id }, data.omitted_note));
    } else if (type === "detail") {
      const detail = (data.details[trace_id] || {})[span_id];
      emit(detail ? { content: { type, trace_id, span_id, detail }, buffers: [] }
        : missing("detail", { trace_id, span_id }, "No detail for this span in the report."));
    } else if (type === "find") {
      const text = request.text.toLowerCase();
      const spans = Object.keys(data.details[trace_id] || {})
        .filter((id) => haystack(trace_id, id).includes(text));
      emit({ content: { type: "found", seq: request.seq, trace_id, span_ids: spans },
        buffers: [] });
    } else if (type === "search") {
      const text = request.text.toLowerCase();
      const traces = Object.keys(data.details)
        .filter((id) => Object.keys(data.details[id]).some((s) => haystack(id, s).includes(text)));
      emit({ content: { type: "searched", seq: request.seq, trace_ids: traces }, buffers: [] });
    }
  },
};
// What find and search look through in the report: each embedded span's detail.
const haystacks = new Map();
function haystack(traceId, spanId) {
  const key = traceId + "/" + spanId;
  if (!haystacks.has(key)) {
    haystacks.set(key, JSON.stringify(data.details[traceId][spanId]).toLowerCase());
  }
  return haystacks.get(key);
}
const source = bytes(document.getElementById("halo-esm").textContent);
const module = await import(URL.createObjectURL(new Blob([source], { type: "text/javascript" })));
module.default.render({ model, el: document.getElementById("halo-app") });
"""

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>halo_nb report</title>
<style>
:root {{
  color-scheme: light dark;
  --jp-ui-font-color1: #1f2328; --jp-ui-font-color2: #59636e; --jp-layout-color1: #ffffff;
  --jp-layout-color2: #f3f4f6; --jp-border-color2: #d0d7de; --jp-brand-color1: #1976d2;
  --jp-error-color1: #d32f2f; --jp-warn-color1: #ef6c00; --jp-success-color1: #2e7d32;
  --jp-ui-font-family: system-ui, -apple-system, "Segoe UI", sans-serif;
  --jp-code-font-family: ui-monospace, "DejaVu Sans Mono", monospace; --jp-ui-font-size1: 13px;
}}
@media (prefers-color-scheme: dark) {{
  :root {{
    --jp-ui-font-color1: #e6edf3; --jp-ui-font-color2: #9198a1; --jp-layout-color1: #111418;
    --jp-layout-color2: #1c2128; --jp-border-color2: #3d444d; --jp-brand-color1: #58a6ff;
    --jp-error-color1: #f47067; --jp-warn-color1: #f0a04b; --jp-success-color1: #57ab5a;
  }}
}}
body {{ margin: 0; padding: 16px 20px; background: var(--jp-layout-color1);
  color: var(--jp-ui-font-color1); font-family: var(--jp-ui-font-family); }}
header h1 {{ font-size: 20px; margin: 0 0 2px; }}
header p {{ margin: 0 0 10px; color: var(--jp-ui-font-color2); font-size: 13px; }}
</style>
<script>{plotly}</script>
</head>
<body>
<header><h1>halo_nb report</h1><p>{subtitle}</p>{note}</header>
<div id="halo-app"></div>
<script type="text/plain" id="halo-esm">{module}</script>
<script type="application/json" id="halo-data">{data}</script>
<script type="module">{bootstrap}</script>
</body>
</html>
"""
