"""Finding the failing step (issue 14) in the real JupyterLab and Chromium: findings and
span search in the trace list, find-in-trace and jumps in the waterfall, the minimap, a
live trace's time axis, the span detail, clusters and insights, the static report; and
hostile span text that must stay text (issue 12)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from halo_nb.ingest.frame_builder import SpanFrameBuilder

from .corpus import BASE_NS, MS, agent_trace, trace_id_of
from .lab import Lab, Notebook, screenshot
from .session import post_otlp, widget

pytestmark = pytest.mark.browser

HOSTILE = ("</script><!--<script>document.title='owned'</script>\u2028\u2029 & \u0026 "
           "<span style=font-size:200px>BIG</span>")
HOSTILE_LABEL = "<span style=font-size:200px>BIG</span>"
BIG_SPAN = "() => [...document.querySelectorAll('span')].some(s => s.style.fontSize === '200px')"


def kernel_json(notebook: Notebook, code: str) -> dict:
    """Run ``code`` (which prints one JSON object) and return the object."""
    cell = notebook.run(code)
    return json.loads(re.search(r"\{.*\}", notebook.text(cell)).group(0))


def drag(page: object, box: dict, start: float, end: float, y: float = 0.5) -> None:
    page.mouse.move(box["x"] + box["width"] * start, box["y"] + box["height"] * y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * end, box["y"] + box["height"] * y, steps=6)
    page.mouse.up()


def test_trace_list_findings_search_keys_resize_legend(notebook: Notebook, analysed: object,
                                                       page: object) -> None:
    from playwright.sync_api import expect

    facts = kernel_json(notebook, (
        "import polars as pl\n"
        "_spans = halo_nb.spans()\n"
        "_first = result.clusters.row(0, named=True)\n"
        "print(json.dumps({'total': halo_nb.trace_table().height,\n"
        "  'with_findings': result.findings['trace_id'].n_unique(),\n"
        "  'cluster': _first['cluster_id'], 'cluster_traces': _first['trace_count'],\n"
        "  'timed_out': _spans.filter(pl.col('status_message').str.contains('orders API timed'))\n"
        "      ['trace_id'].n_unique()}))"))
    root = widget(notebook.run("halo_nb.traces()"))
    count = root.locator(".halo-count")
    expect(count).to_have_text(f"{facts['total']} traces")
    flagged = root.locator(".halo-traces-body .halo-row.halo-has-findings:visible")
    expect(flagged.first).to_be_visible()
    expect(flagged.first.locator("[data-col=findings] .halo-sev")).to_have_text(
        re.compile("critical|high|medium|low"))
    findings = root.locator("select[data-filter=findings]")
    findings.select_option("any")
    expect(count).to_have_text(f"{facts['with_findings']} of {facts['total']} traces")
    findings.select_option(f"cluster:{facts['cluster']}")
    expect(count).to_have_text(f"{facts['cluster_traces']} of {facts['total']} traces")
    screenshot(root, "trace-list")
    findings.select_option("all")

    search = root.locator(".halo-tracelist input.halo-input")
    search.fill("orders API timed out")  # only in span status messages, never in a row
    expect(count).to_have_text(f"{facts['timed_out']} of {facts['total']} traces")
    search.fill("")
    expect(count).to_have_text(f"{facts['total']} traces")

    active = page.evaluate("() => document.querySelector('.jp-Notebook .jp-mod-active')"
                           "?.getAttribute('data-windowed-list-index')")
    body = root.locator(".halo-traces-body")
    body.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    second = root.locator(".halo-traces-body .halo-row[data-index='1']")
    expect(second).to_have_class(re.compile("halo-cursor"))
    trace_id = second.get_attribute("data-trace-id")
    assert page.evaluate("() => document.querySelector('.jp-Notebook .jp-mod-active')"
                         "?.getAttribute('data-windowed-list-index')") == active, \
        "the arrow keys moved the list, not JupyterLab's active cell"
    page.keyboard.press("Enter")
    expect(root.locator("[data-tab=waterfall]")).to_have_class(re.compile("halo-tab-active"))
    expect(root.locator(".halo-waterfall .halo-toolbar").first).to_contain_text(trace_id[:8])
    root.locator("[data-tab=traces]").click()

    head = root.locator(".halo-head-cell:has([data-key=name])")
    before = head.bounding_box()["width"]
    handle = head.locator(".halo-col-resize").bounding_box()
    page.mouse.move(handle["x"] + 3, handle["y"] + 5)
    page.mouse.down()
    page.mouse.move(handle["x"] + 123, handle["y"] + 5, steps=4)
    page.mouse.up()
    assert abs(head.bounding_box()["width"] - before - 120) < 6
    cell = root.locator(".halo-traces-body .halo-row:visible [data-col=name]").first
    assert abs(cell.bounding_box()["width"] - head.bounding_box()["width"]) < 2
    expect(root.locator(".halo-legend-inline")).to_contain_text("error run")


def test_waterfall_find_jumps_minimap_and_critical_path(notebook: Notebook,
                                                        collector_port: int,
                                                        page: object) -> None:
    from playwright.sync_api import expect

    facts = kernel_json(notebook, (
        "wide = halo_nb.trace_table().sort('span_count')['trace_id'][-1]\n"
        "_w = halo_nb.spans(wide)\n"
        "print(json.dumps({'llm7': int((_w['name'] == 'llm-7').sum()),\n"
        "  'errors': int((_w['status'] == 'error').sum())}))"))
    root = widget(notebook.run("halo_nb.waterfall(wide)"))
    body = root.locator(".halo-wf-body")
    expect(body.locator(".halo-row:visible").first).to_be_visible()
    selected = body.locator(".halo-row.halo-selected")

    root.locator("input.halo-find").fill("llm-7")
    expect(root.locator(".halo-find-count")).to_have_text(f"{facts['llm7']} matches")
    expect(selected).to_have_class(re.compile("halo-match"))
    expect(selected).to_contain_text("llm-7")
    first = selected.get_attribute("data-span-id")
    root.locator("input.halo-find").press("Enter")
    expect(selected).not_to_have_attribute("data-span-id", first)
    expect(selected).to_contain_text("llm-7")
    screenshot(root, "waterfall-find")

    root.locator("[data-nav=error] [data-dir=next]").click()
    expect(selected).to_have_class(re.compile("halo-error"))
    first_error = selected.get_attribute("data-span-id")
    body.focus()
    page.keyboard.press("e")
    if facts["errors"] > 1:
        expect(selected).not_to_have_attribute("data-span-id", first_error)
    page.keyboard.press("Shift+E")
    expect(selected).to_have_attribute("data-span-id", first_error)

    body.evaluate("el => { el.scrollTop = 0; }")
    root_row = body.locator(".halo-row[data-index='0']")
    expect(root_row).to_have_class(re.compile("halo-critical"))

    drag(page, root.locator(".halo-minimap").bounding_box(), 0.1, 0.3)
    label = root.locator(".halo-zoom-label")
    expect(label).to_contain_text("spans in range")
    hidden = body.locator(".halo-row:visible").evaluate_all(
        "rows => rows.filter(r => r.querySelector('.halo-bar').style.display === 'none').length")
    assert hidden == 0, "a zoomed view shows only spans with a bar in the window"
    root.locator("button", has_text="Reset zoom").click()
    expect(label).to_have_text("")
    track = body.locator(".halo-row:visible .halo-wf-track").first.bounding_box()
    drag(page, {**track, "height": 24}, 0.5, 0.7)
    expect(label).to_contain_text("zoom")
    root.locator(".halo-minimap").dblclick()
    expect(label).to_have_text("")


def test_live_trace_time_axis_follows_new_spans(notebook: Notebook,
                                                collector_port: int) -> None:
    from playwright.sync_api import expect

    trace_id = trace_id_of(777_001)
    root_id = "1" * 16

    def part(spans: list[tuple[str, str | None, str, int, int]]) -> object:
        builder = SpanFrameBuilder()
        for span_id, parent, name, start_ms, end_ms in spans:
            builder.add(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name,
                        start_ns=BASE_NS + start_ms * MS, end_ns=BASE_NS + end_ms * MS,
                        status_code=1, attributes={"openinference.span.kind": "TOOL"})
        return builder.build()

    post_otlp(collector_port, part([("2" * 16, root_id, "early-step", 0, 800)]))
    root = widget(notebook.run(f"halo_nb.waterfall({trace_id!r})"))
    expect(root.locator(".halo-wf-body .halo-row:visible")).to_have_count(1)
    post_otlp(collector_port, part([("3" * 16, root_id, "late-step", 5_000, 6_000),
                                    (root_id, None, "growing-agent", 0, 6_000)]))
    late = root.locator(".halo-wf-body .halo-row:visible", has_text="late-step")
    expect(late).to_have_count(1, timeout=15_000)
    bar = late.locator(".halo-bar")
    expect(bar).to_be_visible()
    left = float(bar.evaluate("b => b.style.left").rstrip("%"))
    assert 80 < left < 86, f"late-step starts at 5 of 6 s, drawn at {left}%"
    expect(root.locator(".halo-tick").last).to_have_text(re.compile(r"[45]\.\d+ s"))


def test_span_detail_chat_turns_json_copy_and_narrow_layout(notebook: Notebook,
                                                            collector_port: int,
                                                            page: object, lab: Lab) -> None:
    from playwright.sync_api import expect

    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab.url)
    cell = notebook.run(
        "from halo_nb import start_trace, span, end_trace\n"
        "t = start_trace('chat-agent', input='How many moons does Neptune have?')\n"
        "with span(t, name='chat smollm2-135m-instruct', type='llm',\n"
        "          model='smollm2-135m-instruct') as s:\n"
        "    s.set_input([{'role': 'system', 'content': 'You are a research assistant.'},\n"
        "                 {'role': 'user', 'content': 'How many moons does Neptune have?'}])\n"
        "    s.set_output(json.dumps([{'id': 'call_1', 'type': 'function', 'function': {\n"
        "        'name': 'web_search', 'arguments': json.dumps({'query': 'Neptune moons'})}}]))\n"
        "with span(t, name='web_search', type='tool') as s:\n"
        "    s.set_input({'query': 'Neptune moons'})\n"
        "    s.set_tool('web_search', arguments={'query': 'Neptune moons'}, call_id='call_1')\n"
        "    s.set_output('[]')\n"
        "end_trace(t, output='Neptune has 16 known moons.')\n"
        "halo_nb.waterfall(t.trace_id)")
    root = widget(cell)
    body = root.locator(".halo-wf-body")
    detail = root.locator(".halo-detail")
    # Sequential steps: the LLM call, then the tool, both on the critical path.
    expect(body.locator(".halo-row.halo-critical")).to_have_count(3)
    body.locator(".halo-row:visible", has_text="chat smollm2").click()
    chat = detail.locator("[data-section='Messages (2)'] .halo-turn")
    expect(chat).to_have_count(2)
    expect(chat.nth(0)).to_have_attribute("data-role", "system")
    expect(chat.nth(1)).to_contain_text("How many moons does Neptune have?")
    expect(detail.locator("[data-section=Response] .halo-call")).to_contain_text("→ web_search")
    expect(detail.locator("[data-section^=Attributes] summary")).to_contain_text("shown above")
    assert "llm.input_messages" not in detail.locator("[data-section^=Attributes]").inner_text()
    screenshot(root, "span-detail-chat")

    body.locator(".halo-row:visible", has_text="web_search").click()
    call = detail.locator("[data-section='Tool call']")
    expect(call.locator("pre")).to_have_text('{\n  "query": "Neptune moons"\n}')
    call.locator("button", has_text="Raw").click()
    expect(call.locator("pre")).to_have_text('{"query":"Neptune moons"}')  # as stored
    expect(detail.locator("[data-section=Input]")).to_have_count(0)  # same as the arguments
    expect(detail.locator("[data-section='Tool result'] .halo-empty-result")).to_be_visible()
    call.locator("button", has_text="Copy").click()
    expect(call.locator("button", has_text="Copied")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == '{"query":"Neptune moons"}'
    wrap = call.locator("pre").evaluate(
        "p => [getComputedStyle(p).overflowWrap, getComputedStyle(p).wordBreak]")
    assert wrap == ["break-word", "normal"], "lines break between words, not inside them"

    page.set_viewport_size({"width": 760, "height": 1000})
    try:
        rows = body.bounding_box()
        box = detail.bounding_box()
        assert box["y"] >= rows["y"] + rows["height"] - 2, "detail below the chart"
        assert box["width"] > 0.9 * root.bounding_box()["width"]
        track = body.locator(".halo-row:visible .halo-wf-track").first.bounding_box()
        assert track["width"] > 250, "the time axis keeps its room in a narrow column"
        screenshot(root, "waterfall-narrow")
    finally:
        page.set_viewport_size({"width": 1400, "height": 1000})


def test_clusters_and_insights_titles_figures_evidence_decisive(notebook: Notebook,
                                                                analysed: object) -> None:
    from playwright.sync_api import expect

    root = widget(notebook.run("halo_nb.clusters()"))
    titles = root.locator(".halo-cluster-title").all_inner_texts()
    assert titles and len(set(titles)) == len(titles)
    for label in ("Prevalence", "Failed", "Lift"):
        assert root.locator("th", has_text=label).get_attribute("title")
    first = root.locator("tr.halo-cluster").first
    more = first.locator(".halo-chips .halo-link")
    if more.count():
        more.click()
    shown = int(re.search(r"· (\d+) of", first.locator(".halo-prevalence").inner_text()).group(1))
    expect(first.locator(".halo-chip")).to_have_count(shown)
    screenshot(root, "clusters")

    root = widget(notebook.run("halo_nb.insights()"))
    card = root.locator(".halo-insight").first
    link = card.locator(".halo-evidence-link").first
    expect(link).to_be_visible()
    expect(card.locator(".halo-excerpt").first).to_contain_text("orders API timed out")
    expect(card.locator(".halo-decisive-step")).to_contain_text("Decisive step")
    screenshot(root, "insights")
    span_id = link.get_attribute("data-span-id")
    link.click()
    selected = root.locator(".halo-wf-body .halo-row.halo-selected")
    expect(selected).to_have_attribute("data-span-id", span_id)
    decisive = root.locator(".halo-wf-body .halo-row.halo-decisive")
    expect(decisive).to_have_count(1)
    root.locator(".halo-decisive-button").click()
    expect(selected).to_have_class(re.compile("halo-decisive"))
    expect(root.locator(".halo-decisive-box")).to_contain_text("Decisive span of this failure")
    screenshot(root, "waterfall-decisive")


def test_hostile_span_text_stays_text_in_widgets(notebook: Notebook, collector_port: int,
                                                 page: object) -> None:
    from playwright.sync_api import expect

    builder = SpanFrameBuilder()
    trace_id = trace_id_of(777_002)
    builder.add(trace_id=trace_id, span_id="a" * 16, parent_span_id=None, name=HOSTILE_LABEL,
                start_ns=BASE_NS, end_ns=BASE_NS + 50 * MS, status_code=2, status_message=HOSTILE,
                attributes={"openinference.span.kind": "TOOL", "input.value": HOSTILE})
    post_otlp(collector_port, builder.build())
    root = widget(notebook.run(f"halo_nb.waterfall({trace_id!r})"))
    row = root.locator(".halo-wf-body .halo-row:visible").first
    expect(row).to_contain_text(HOSTILE_LABEL)
    row.click()
    expect(root.locator(".halo-detail")).to_contain_text("<!--<script>document.title")
    assert not page.evaluate(BIG_SPAN) and page.title() != "owned"


def test_static_report_opens_a_failing_trace_without_live_badge_and_stays_safe(
        notebook: Notebook, analysed: object, lab: Lab, browser: object) -> None:
    from playwright.sync_api import expect

    builder = SpanFrameBuilder()
    agent_trace(builder, 1)
    agent_trace(builder, 3, failing=True)
    builder.add(trace_id=trace_id_of(2), span_id="a" * 16, parent_span_id=None,
                name=HOSTILE_LABEL, start_ns=BASE_NS, end_ns=BASE_NS + 50 * MS, status_code=1,
                attributes={"openinference.span.kind": "TOOL", "input.value": HOSTILE})
    hostile_path = lab.root / "hostile-spans.parquet"
    builder.build().write_parquet(hostile_path)
    paths = kernel_json(notebook, (
        "import polars as pl\n"
        "from halo_nb.storage.store import SpanStore\n"
        "from halo_nb.widgets.report import write_report\n"
        "_hostile = SpanStore(None)\n"
        f"_hostile.append(pl.read_parquet({str(hostile_path)!r}))\n"
        "print(json.dumps({'session': str(halo_nb.report('session.html').resolve()),\n"
        "  'hostile': str(write_report(_hostile, None, 'hostile.html').resolve())}))"))
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, offline=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(Path(paths["session"]).as_uri())
    root = page.locator(".halo-root")
    expect(root.locator(".halo-count")).to_contain_text("traces")
    expect(root.locator(".halo-live")).to_have_text("")
    root.locator("[data-tab=waterfall]").click()
    expect(root.locator(".halo-wf-body .halo-row.halo-error:visible").first).to_be_visible()
    screenshot(page, "report-offline")

    page.goto(Path(paths["hostile"]).as_uri())
    expect(root.locator(".halo-count")).to_have_text("3 traces")
    root.locator("[data-tab=waterfall]").click()
    root.locator(".halo-wf-body .halo-row:visible").first.wait_for()
    root.locator("[data-tab=traces]").click()
    root.locator(".halo-traces-body .halo-row", has_text=HOSTILE_LABEL).click()
    root.locator(".halo-wf-body .halo-row:visible", has_text=HOSTILE_LABEL).click()
    expect(root.locator(".halo-detail")).to_contain_text("<!--<script>document.title")
    root.locator("[data-tab=charts]").click()
    latency = root.locator(".halo-chart[data-title=latency]")
    expect(latency).to_contain_text(HOSTILE_LABEL, timeout=30_000)
    assert not page.evaluate(BIG_SPAN) and page.title() != "owned"
    assert errors == []
    context.close()


def test_no_page_errors_in_the_notebook(page: object) -> None:
    assert page.errors == []
