"""Kernel side of the widgets: Arrow payloads, the message protocol, live coalescing,
highlights from a real analysis, the static report, and the shipped front-end build."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import threading
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from browser.corpus import BASE_NS, MS, agent_trace, agent_traces, trace_id_of

import halo_nb
from halo_nb import runtime
from halo_nb.ingest.frame_builder import SpanFrameBuilder
from halo_nb.rlm import analyze_frame
from halo_nb.storage.store import SpanStore, UnknownTraceError
from halo_nb.widgets import Clusters, Dashboard, Insights, TraceList, Waterfall
from halo_nb.widgets.analysis_view import AnalysisView
from halo_nb.widgets.arrow import frame_to_ipc
from halo_nb.widgets.charts import chart_figures
from halo_nb.widgets.live import Throttle
from halo_nb.widgets.payloads import TraceTableFeed, span_detail, waterfall_message
from halo_nb.widgets.report import script_json, write_report

REPO = Path(__file__).resolve().parents[1]


def decode(buffer: bytes) -> pa.Table:
    return pa.ipc.open_stream(buffer).read_all()


@pytest.fixture
def store() -> SpanStore:
    store = SpanStore(None)
    store.append(agent_traces(12))
    yield store
    store.close()


class Recorder:
    """Stands in for the comm: keeps what the widget sends."""

    def __init__(self, widget: object) -> None:
        self.messages: list[tuple[dict, list[bytes]]] = []
        self.lock = threading.Lock()
        widget.send = self.send

    def send(self, content: dict, buffers: list[bytes] | None = None) -> None:
        with self.lock:
            self.messages.append((content, list(buffers or [])))

    def of(self, kind: str) -> list[tuple[dict, list[bytes]]]:
        with self.lock:
            return [m for m in self.messages if m[0]["type"] == kind]


def ask(widget: object, **content: object) -> None:
    widget._on_message(widget, content, [])


def test_arrow_payload_uses_plain_types() -> None:
    frame = pl.DataFrame({
        "count": pl.Series([1, None], dtype=pl.UInt32), "ok": [True, False],
        "status": pl.Series(["ok", "error"], dtype=pl.Enum(["ok", "error"])),
        "name": ["a", None], "ids": [["x", "y"], None]})
    table = decode(frame_to_ipc(frame))
    assert [str(f.type) for f in table.schema] == ["double", "double", "string", "string",
                                                   "list<item: string>"]
    values = table.to_pydict()
    assert values["count"][0] == 1.0 and values["count"][1] != values["count"][1]  # NaN
    assert values["ok"] == [1.0, 0.0] and values["status"] == ["ok", "error"]
    assert values["ids"] == [["x", "y"], None]


def test_trace_feed_sends_only_changed_rows(store: SpanStore) -> None:
    feed = TraceTableFeed()
    content, [full] = feed.full(store.traces())
    assert content["mode"] == "replace" and decode(full).num_rows == 12
    assert feed.changes(store.traces()) is None
    builder = SpanFrameBuilder()
    new_id = agent_trace(builder, 500)
    store.append(builder.build())
    content, [upsert] = feed.changes(store.traces())
    assert content == {"type": "traces", "mode": "upsert", "removed": []}
    assert decode(upsert).column("trace_id").to_pylist() == [new_id]
    late = store.spans(trace_id_of(1)).head(1).with_columns(
        pl.lit("late-span").alias("span_id"), pl.lit("late").alias("name"))
    store.append(late)
    _, [upsert] = feed.changes(store.traces())
    rows = decode(upsert).to_pylist()
    assert [(r["trace_id"], r["span_count"]) for r in rows] == [(trace_id_of(1), 6.0)]


def test_waterfall_rows_are_relative_and_flag_annotations_and_errors(store: SpanStore) -> None:
    spans = store.spans(trace_id_of(3))  # every third trace fails
    content, [rows] = waterfall_message(spans, trace_id_of(3), ["x"])
    assert content["name"] == "support-agent" and content["highlight"] == ["x"]
    table = decode(rows).to_pylist()
    assert min(r["start"] for r in table) == 0.0
    by_name = {r["name"]: r for r in table}
    assert by_name["search_docs"]["annotated"] == 1.0
    assert sum(r["status"] == "error" for r in table) == 4
    assert by_name["lookup_order"]["events"] == 1.0
    assert "attributes" not in decode(rows).column_names, "attributes load lazily, per span"
    assert "error" in waterfall_message(spans.head(0), "nope", [])[0]


def test_span_detail_has_attributes_events_annotations_and_clips(store: SpanStore) -> None:
    spans = store.spans(trace_id_of(3))
    failed = spans.filter(pl.col("status") == "error", pl.col("name") == "lookup_order").row(
        0, named=True)
    detail = span_detail(spans, failed["span_id"], None)
    assert detail["attributes"]["tool.name"] == "lookup_order"
    assert detail["events"][0]["name"] == "exception"
    assert detail["events"][0]["offset_ms"] == pytest.approx(
        (failed["start_ns"] - spans["start_ns"].min()) / MS + 299)
    search = spans.filter(pl.col("name") == "search_docs")["span_id"][0]
    annotated = span_detail(spans, search, None)
    assert annotated["annotations"][0]["attributes"]["halo.annotation.label"] == "relevant"
    assert annotated["events"] == []
    huge = spans.head(1).with_columns(pl.lit("y" * 300_000).alias("input"))
    clipped = span_detail(huge, huge["span_id"][0], None)["input"]
    assert len(clipped) < 201_000 and "300,000 characters in total" in clipped
    with pytest.raises(KeyError, match="not in trace"):
        span_detail(spans, "0000", None)


def test_trace_list_protocol_ready_open_detail(store: SpanStore) -> None:
    widget = TraceList(store)
    sent = Recorder(widget)
    ask(widget, type="ready")
    [(content, [rows])] = sent.of("traces")
    assert content["mode"] == "replace" and decode(rows).num_rows == 12
    ask(widget, type="open", trace_id=trace_id_of(2))
    [(content, [spans])] = sent.of("waterfall")
    assert content["trace_id"] == trace_id_of(2) and decode(spans).num_rows == 5
    span_id = decode(spans).column("span_id")[1].as_py()
    ask(widget, type="detail", trace_id=trace_id_of(2), span_id=span_id)
    [(content, _)] = sent.of("detail")
    assert content["detail"]["span_id"] == span_id
    ask(widget, type="open", trace_id="f" * 32)
    error = sent.of("waterfall")[-1][0]
    assert "no stored spans" in error["error"]
    widget.close()


def test_waterfall_of_unknown_trace_is_a_clear_error(store: SpanStore) -> None:
    with pytest.raises(UnknownTraceError, match="no stored spans"):
        Waterfall(store, "0" * 32)


def test_live_updates_are_coalesced_and_stop_after_close(store: SpanStore) -> None:
    widget = TraceList(store)
    sent = Recorder(widget)
    ask(widget, type="ready")
    ask(widget, type="open", trace_id=trace_id_of(1))

    def ingest() -> None:
        for n in range(100, 140):
            builder = SpanFrameBuilder()
            agent_trace(builder, n)
            store.append(builder.build())
            time.sleep(0.01)

    started = time.monotonic()
    thread = threading.Thread(target=ingest)
    thread.start()
    thread.join()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        upserts = sent.of("traces")[1:]
        if sum(decode(b[0]).num_rows for _, b in upserts) >= 40:
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    ids = {i for _, b in upserts for i in decode(b[0]).column("trace_id").to_pylist()}
    assert ids == {trace_id_of(n) for n in range(100, 140)}
    assert len(upserts) <= elapsed / 0.25 + 2, "≤ 4 refreshes a second, not one per append"
    assert len(sent.of("waterfall")) == 1, "the open trace did not change"
    late = store.spans(trace_id_of(1)).head(1).with_columns(pl.lit("late").alias("span_id"))
    store.append(late)
    deadline = time.monotonic() + 3
    while len(sent.of("waterfall")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    content, [rows] = sent.of("waterfall")[-1]
    assert content["keep"] and decode(rows).num_rows == 6
    widget.close()
    count = len(sent.messages)
    builder = SpanFrameBuilder()
    agent_trace(builder, 900)
    store.append(builder.build())
    time.sleep(0.6)
    assert len(sent.messages) == count


def test_throttle_runs_once_for_a_burst() -> None:
    runs: list[float] = []
    throttle = Throttle(lambda: runs.append(time.monotonic()), interval=0.2)
    for _ in range(200):
        throttle.notify()
    time.sleep(0.15)
    assert len(runs) == 1
    throttle.notify()
    throttle.notify()
    time.sleep(0.4)
    assert len(runs) == 2 and runs[1] - runs[0] >= 0.19
    throttle.close()
    throttle.notify()
    time.sleep(0.3)
    assert len(runs) == 2


@pytest.fixture
def analysis(store: SpanStore) -> object:
    return analyze_frame(store.spans(), halo_nb.Settings(model="none"))


def test_clusters_and_insights_from_a_real_analysis(store: SpanStore, analysis: object) -> None:
    assert analysis.clusters.height >= 1
    widget = Clusters(analysis, store)
    sent = Recorder(widget)
    ask(widget, type="ready")
    [(content, [clusters, hypotheses])] = sent.of("analysis")
    assert content["systemic"] is True and content["total_traces"] == 12
    first = decode(clusters).to_pylist()[0]
    assert first["cluster_id"] == analysis.clusters["cluster_id"][0]
    assert 0 < first["prevalence"] <= 1 and first["example_trace_ids"]
    assert decode(hypotheses).num_rows == analysis.hypotheses.height
    example = first["example_trace_ids"][0]
    ask(widget, type="open", trace_id=example, cluster_id=first["cluster_id"])
    content, _ = sent.of("waterfall")[-1]
    flagged = set(content["highlight"])
    trace_spans = store.spans(example)
    assert flagged and flagged <= set(trace_spans["span_id"])
    failed = set(trace_spans.filter(pl.col("status") == "error", pl.col("kind") == "tool")
                 ["span_id"])
    assert failed <= flagged
    insights = Insights(analysis, store)
    sent = Recorder(insights)
    ask(insights, type="ready")
    assert len(sent.of("analysis")) == 1 and not sent.of("traces")
    widget.close()
    insights.close()


def test_dashboard_charts_and_plotly_source(store: SpanStore, analysis: object) -> None:
    figures = chart_figures(store.spans(), store.traces(), analysis.clusters)
    assert [f["title"] for f in figures] == ["latency", "tokens", "clusters"]
    latency = json.loads(figures[0]["figure"])
    assert {d["type"] for d in latency["data"]} == {"box"}
    widget = Dashboard(store, analysis)
    sent = Recorder(widget)
    ask(widget, type="ready")
    assert sent.of("traces") and sent.of("analysis")
    ask(widget, type="charts")
    assert len(sent.of("charts")[0][0]["figures"]) == 3
    ask(widget, type="plotly")
    assert "Plotly" in sent.of("plotly")[0][0]["source"][:100_000]
    widget.close()


def test_report_is_self_contained(store: SpanStore, analysis: object, tmp_path: Path) -> None:
    path = write_report(store, analysis, tmp_path / "out" / "report.html")
    page = path.read_text()
    assert "<script src" not in page and "<link" not in page
    assert page.count("<script") == 4  # plotly.js, the module, the data, the bootstrap
    start = page.index('id="halo-data">') + len('id="halo-data">')
    data = json.loads(page[start:page.index("</script>", start)])
    assert set(data["waterfalls"]) == set(store.trace_ids())
    cluster = analysis.clusters["cluster_id"][0]
    assert data["highlights"][cluster]
    span_ids = store.spans(trace_id_of(3))["span_id"].to_list()
    assert set(data["details"][trace_id_of(3)]) == set(span_ids)
    small = write_report(store, analysis, tmp_path / "small.html", max_traces=2)
    assert "2 of 12 traces" in small.read_text()
    with pytest.raises(ValueError, match=r"\.html"):
        write_report(store, analysis, tmp_path / "report.pdf")


FAILING = [trace_id_of(n) for n in (3, 6, 9, 12)]  # agent_traces: every third run fails


def test_trace_list_shows_findings_of_the_latest_analysis(store: SpanStore,
                                                          analysis: object) -> None:
    previous = runtime.last_analysis()
    runtime.set_last_analysis(analysis)
    try:
        widget = TraceList(store)  # no result given: the session's latest analysis
        sent = Recorder(widget)
        ask(widget, type="ready")
        widget.close()
    finally:
        runtime.set_last_analysis(previous)
    [(_, [rows])] = sent.of("traces")
    by_id = {r["trace_id"]: r for r in decode(rows).to_pylist()}
    cluster = analysis.clusters.row(0, named=True)
    for trace_id in FAILING:
        row = by_id[trace_id]
        assert row["finding_count"] >= 1 and row["worst_severity"] == "high"
        assert (row["cluster_id"], row["cluster_title"]) == (cluster["cluster_id"],
                                                             cluster["title"])
        assert row["output_preview"] == "Sorry, I could not look up your order."
    healthy = by_id[trace_id_of(1)]
    assert healthy["cluster_id"] is None and math.isnan(healthy["finding_count"])
    assert healthy["input_preview"] == "Where is my order #1234?"


def test_views_that_follow_the_latest_analysis_refresh_when_analyze_runs_again(
        store: SpanStore, analysis: object) -> None:
    previous = runtime.last_analysis()
    runtime.set_last_analysis(None)
    trace_list, clusters = TraceList(store), Clusters(None, store)
    listed, clustered = Recorder(trace_list), Recorder(clusters)
    try:
        ask(trace_list, type="ready")
        ask(trace_list, type="open", trace_id=FAILING[0])
        ask(clusters, type="ready")
        assert decode(listed.of("traces")[0][1][0]).column("cluster_id").null_count == 12
        runtime.set_last_analysis(analysis)  # what analyze() does; no span arrives
        deadline = time.monotonic() + 5
        while (len(listed.of("traces")) < 2 or len(listed.of("waterfall")) < 2
               or len(clustered.of("analysis")) < 2) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        trace_list.close()
        clusters.close()
        runtime.set_last_analysis(previous)
    content, [rows] = listed.of("traces")[1]
    assert content["mode"] == "upsert"
    updated = {r["trace_id"]: r for r in decode(rows).to_pylist()}
    assert set(updated) == set(FAILING)  # only the rows whose findings changed
    assert all(r["worst_severity"] == "high" for r in updated.values())
    content, _ = listed.of("waterfall")[1]
    assert content["keep"] and content["decisive"] is not None
    _, [cluster_rows, _] = clustered.of("analysis")[1]
    assert decode(cluster_rows).num_rows == analysis.clusters.height >= 1


def test_search_traces_and_find_in_trace_reach_span_content(store: SpanStore) -> None:
    widget = TraceList(store)
    sent = Recorder(widget)
    ask(widget, type="search", text="TIMEOUTERROR: ORDERS", seq=3)  # a status message
    ask(widget, type="search", text='"order_id"', seq=4)  # tool arguments
    ask(widget, type="search", text=".*", seq=5)  # literal text, never a pattern
    searched = {c["seq"]: set(c["trace_ids"]) for c, _ in sent.of("searched")}
    assert searched == {3: set(FAILING), 4: set(store.trace_ids()), 5: set()}
    failing = store.spans(FAILING[0])
    ask(widget, type="find", trace_id=FAILING[0], text="orders api", seq=1)
    ask(widget, type="find", trace_id=FAILING[0], text="halo.attempt", seq=2)  # attributes
    found = {c["seq"]: set(c["span_ids"]) for c, _ in sent.of("found")}
    lookups = set(failing.filter(pl.col("name") == "lookup_order")["span_id"])
    assert found == {1: lookups, 2: lookups}
    ask(widget, type="find", trace_id="f" * 32, text="x", seq=9)
    assert "no stored spans" in sent.of("found")[-1][0]["error"]
    assert sent.of("found")[-1][0]["seq"] == 9
    widget.close()


def test_waterfall_marks_findings_and_the_decisive_span(store: SpanStore,
                                                        analysis: object) -> None:
    view = AnalysisView.of(analysis)
    spans = store.spans(FAILING[0])
    content, [rows] = waterfall_message(spans, FAILING[0], [], analysis=view)
    marked = {r["span_id"]: r["finding"] for r in decode(rows).to_pylist() if r["finding"]}
    expected = analysis.findings.filter(pl.col("trace_id") == FAILING[0])
    assert set(marked) == set(expected["span_id"]) and set(marked.values()) <= {
        "critical", "high", "medium", "low", "info"}
    blamed = analysis.blame.filter(pl.col("trace_id") == FAILING[0], pl.col("rank") == 1)
    assert content["decisive"]["span_id"] == blamed["span_id"][0]
    assert content["decisive"]["reasons"] == blamed["reasons"][0].to_list()
    assert waterfall_message(store.spans(trace_id_of(1)), trace_id_of(1), [],
                             analysis=view)[0]["decisive"] is None


def test_insights_evidence_links_carry_excerpts(store: SpanStore, analysis: object) -> None:
    content, _ = AnalysisView.of(analysis).message(store)
    cluster = analysis.clusters["cluster_id"][0]
    evidence = content["evidence"][cluster]
    assert evidence and all(e["trace_id"] in FAILING for e in evidence)
    assert evidence[0]["excerpt"] == '{"order_id": "1234"} → TimeoutError: orders API timed out'
    assert content["decisive"][cluster]["traces"] == len(FAILING)


HOSTILE = ("</script><!--<script>document.title='owned'</script>\u2028\u2029 & \u0026 "
           "<span style=font-size:200px>BIG</span>")
HOSTILE_LABEL = "<span style=font-size:200px>BIG</span>"


def hostile_store() -> SpanStore:
    builder = SpanFrameBuilder()
    agent_trace(builder, 1)
    agent_trace(builder, 3, failing=True)
    trace_id = trace_id_of(2)
    builder.add(trace_id=trace_id, span_id="a" * 16, parent_span_id=None, name=HOSTILE_LABEL,
                start_ns=BASE_NS, end_ns=BASE_NS + 50 * MS, status_code=2,
                status_message=HOSTILE, attributes={"openinference.span.kind": "TOOL",
                                                    "tool.name": HOSTILE_LABEL,
                                                    "input.value": HOSTILE,
                                                    "output.value": HOSTILE})
    store = SpanStore(None)
    store.append(builder.build())
    return store


def test_report_escapes_span_text_in_scripts_and_chart_labels(tmp_path: Path) -> None:
    store = hostile_store()
    path = write_report(store, None, tmp_path / "report.html")
    page = path.read_text()
    assert page.count("<script") == 4 and page.count("</script>") == 4
    assert "<!--" not in page
    start = page.index('id="halo-data">') + len('id="halo-data">')
    text = page[start:page.index("</script>", start)]
    assert not set(text) & {"<", ">", "&", "\u2028", "\u2029"}
    data = json.loads(text)
    assert data["details"][trace_id_of(2)]["a" * 16]["input"] == HOSTILE
    assert data["model"]["static"] is True and data["model"]["trace_id"] in {
        trace_id_of(2), trace_id_of(3)}
    assert "embeds the spans" not in page.split("<script")[0], "every trace is embedded"
    figures = {f["title"]: f["figure"] for f in chart_figures(store.spans(), store.traces(),
                                                              None)}
    assert "<span" not in figures["latency"] and "&lt;span" in figures["latency"]
    assert json.loads(script_json(HOSTILE)) == HOSTILE
    store.close()


def test_shipped_module_matches_the_source(tmp_path: Path) -> None:
    """halo_nb/widgets/static/widget.js is committed; it must be the build of js/src."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to rebuild the front end")
    js = REPO / "js"
    if not (js / "node_modules" / "esbuild").is_dir():
        subprocess.run(["npm", "ci", "--prefix", str(js), "--no-audit", "--no-fund"],
                       check=True, capture_output=True, timeout=300)
    built = tmp_path / "widget.js"
    subprocess.run(["node", str(js / "build.mjs"), "--outfile", str(built)], check=True,
                   timeout=120)
    shipped = REPO / "halo_nb" / "widgets" / "static" / "widget.js"
    assert built.read_bytes() == shipped.read_bytes(), (
        "the shipped widget module is stale: run `npm ci --prefix js && npm run --prefix js build`")
