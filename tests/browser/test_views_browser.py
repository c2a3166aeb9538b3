"""End to end: a real JupyterLab in headless Chromium, spans sent over OTLP/HTTP to the
collector running in the notebook's kernel, every view rendered and used."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from .lab import Lab, Notebook, screenshot
from .session import ERROR_TRACES, TRACES, WIDE_SPANS, send_live_trace, visible_names, widget

pytestmark = pytest.mark.browser

def test_trace_list_rows_sorting_filter_and_waterfall(notebook: Notebook, collector_port: int,
                                                       page: object) -> None:
    from playwright.sync_api import expect

    cell = notebook.run("traces = halo_nb.traces()\ntraces")
    root = widget(cell)
    expect(root.locator(".halo-count")).to_have_text(f"{TRACES + 1} traces")
    rows = root.locator(".halo-traces-body .halo-row:visible")
    assert 10 < rows.count() < 60, "only the visible rows are in the DOM"
    screenshot(root, "trace-list")

    root.locator("[data-key=span_count]").click()  # numeric: descending first
    expect(rows.first.locator("[data-col=span_count]")).to_have_text(f"{WIDE_SPANS:,}")
    root.locator("[data-key=span_count]").click()
    counts = [int(v.replace(",", "")) for v in visible_names(root, "span_count")]
    assert counts == sorted(counts) and counts[0] == 5
    root.locator("[data-key=name]").click()
    assert visible_names(root, "name")[0].startswith("long-agent-run")

    root.locator("select[data-filter=status]").select_option("error")
    expect(root.locator(".halo-count")).to_have_text(f"{ERROR_TRACES} of {TRACES + 1} traces")
    assert set(visible_names(root, "status")) == {"error"}
    root.locator("select[data-filter=status]").select_option("all")
    root.locator(".halo-tracelist input.halo-input").fill("long-agent")
    expect(root.locator(".halo-count")).to_have_text(f"1 of {TRACES + 1} traces")
    root.locator(".halo-tracelist input.halo-input").fill("")

    root.locator(".halo-tracelist input.halo-input").fill("support-agent")
    rows.first.click()
    waterfall = root.locator(".halo-waterfall")
    expect(waterfall.locator(".halo-wf-body .halo-row:visible").first).to_be_visible()
    expect(root.locator("[data-tab=waterfall]")).to_have_class(re.compile("halo-tab-active"))
    error_rows = waterfall.locator(".halo-wf-body .halo-row.halo-error:visible")
    expect(error_rows).to_have_count(4)  # the root and three failed lookup_order calls
    assert error_rows.nth(1).locator(".halo-mark-error").count() == 1
    error_rows.nth(1).click()
    detail = waterfall.locator(".halo-detail")
    expect(detail.locator(".halo-error-text")).to_contain_text("orders API timed out")
    expect(detail).to_contain_text("tool.name")
    expect(detail).to_contain_text("exception")
    screenshot(root, "waterfall-error-span")
    waterfall.locator(".halo-wf-body .halo-row:visible", has_text="answer").click()
    section = detail.locator("details.halo-section:has(> summary:text-is('Input'))")
    show_all = section.locator("button.halo-link")
    expect(show_all).to_have_text(re.compile(r"Show all \(2,0\d\d characters\)"))
    assert len(section.locator("pre").inner_text()) < 700
    show_all.click()
    expect(section.locator("pre")).to_contain_text("(long prompt)")
    assert cell.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                        ).count() == 0


def test_live_span_appears_without_rerunning(notebook: Notebook, collector_port: int,
                                             page: object) -> None:
    from playwright.sync_api import expect

    cells = page.locator(".jp-Notebook .jp-CodeCell")
    root = cells.nth(1).locator(".halo-root")
    root.locator("[data-tab=traces]").click()
    root.locator("select[data-filter=status]").select_option("all")
    root.locator(".halo-tracelist input.halo-input").fill("")
    executed = page.locator(".jp-InputPrompt").all_inner_texts()
    send_live_trace(collector_port)
    expect(root.locator(".halo-count")).to_have_text(f"{TRACES + 2} traces", timeout=15_000)
    root.locator("[data-key=start_ms]").click()
    if "▼" not in root.locator("[data-key=start_ms]").inner_text():
        root.locator("[data-key=start_ms]").click()
    live = root.locator(".halo-traces-body .halo-row", has_text="live-probe")
    expect(live).to_have_count(1)
    expect(live.locator("[data-col=status]")).to_have_text("error")
    assert page.locator(".jp-InputPrompt").all_inner_texts() == executed, "no cell ran"
    screenshot(root, "trace-list-live")
    live.click()
    expect(root.locator(".halo-wf-body .halo-row.halo-error:visible")).to_have_count(1)


def test_waterfall_large_trace_virtualised_collapse_zoom(notebook: Notebook,
                                                          collector_port: int) -> None:
    from playwright.sync_api import expect

    cell = notebook.run(
        "wide = halo_nb.trace_table().filter(halo_nb.trace_table()['span_count'] > 1000)"
        "['trace_id'][0]\n"
        "halo_nb.waterfall(wide)")
    root = widget(cell)
    body = root.locator(".halo-wf-body")
    expect(body.locator(".halo-row:visible").first).to_be_visible()
    assert body.locator(".halo-row").count() < 80, "only the rows in view are in the DOM"
    expect(root.locator(".halo-toolbar").first).to_contain_text(f"{WIDE_SPANS:,} spans")
    body.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    # The rows in view are drawn on the next frame after the scroll: wait for the last one.
    expect(body.locator(f'.halo-row[data-index="{WIDE_SPANS - 1}"]')).to_be_visible()
    last_index = max(int(i) for i in body.locator(".halo-row:visible").evaluate_all(
        "rows => rows.map(r => r.dataset.index)"))
    assert last_index == WIDE_SPANS - 1
    body.evaluate("el => { el.scrollTop = 0; }")
    root.locator("button", has_text="Collapse all").click()
    collapsed = body.locator(".halo-row:visible").count()
    assert 1 < collapsed < 60
    body.locator(".halo-row:visible").first.locator(".halo-caret[data-action=toggle]").click()
    expect(body.locator(".halo-row:visible")).to_have_count(1)
    body.locator(".halo-row:visible").first.locator(".halo-caret[data-action=toggle]").click()
    axis = root.locator(".halo-axis")
    box = axis.bounding_box()
    page = axis.page
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + 5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + 5, steps=5)
    page.mouse.up()
    expect(root.locator(".halo-zoom-label")).to_contain_text("zoom")
    screenshot(root, "waterfall-large-zoomed")
    root.locator("button", has_text="Reset zoom").click()
    expect(root.locator(".halo-zoom-label")).to_have_text("")


def test_clusters_open_waterfall_with_flagged_spans(notebook: Notebook, analysed: object,
                                                    page: object) -> None:
    from playwright.sync_api import expect

    cell = notebook.run("halo_nb.clusters()")
    root = widget(cell)
    clusters = root.locator("tr.halo-cluster")
    expect(clusters.first).to_be_visible()
    retry = clusters.filter(has_text="lookup_order").first
    expect(retry).to_contain_text("%")
    expect(retry.locator(".halo-sev")).to_be_visible()
    screenshot(root, "clusters")
    retry.locator(".halo-chip").first.click()
    flagged = root.locator(".halo-wf-body .halo-row.halo-flagged:visible")
    expect(flagged.first).to_be_visible()
    assert flagged.count() >= 1
    expect(root.locator(".halo-detail")).to_contain_text("lookup_order")
    screenshot(root, "clusters-waterfall-flagged")


def test_insights_show_hypothesis_fix_confidence_evidence(notebook: Notebook,
                                                         analysed: object) -> None:
    from playwright.sync_api import expect

    cell = notebook.run("halo_nb.insights()")
    root = widget(cell)
    card = root.locator(".halo-insight").first
    expect(card).to_be_visible()
    expect(card.locator(".halo-hypothesis")).not_to_be_empty()
    expect(card.locator(".halo-fix")).to_contain_text("Suggested fix")
    expect(card.locator(".halo-confidence")).to_contain_text("%")
    expect(card.locator(".halo-evidence")).to_contain_text("Evidence")
    screenshot(root, "insights")
    card.locator(".halo-chip").first.click()
    expect(root.locator(".halo-wf-body .halo-row.halo-flagged:visible").first).to_be_visible()


def test_dashboard_tabs_charts_offline_and_dark_theme(notebook: Notebook, analysed: object,
                                                      page: object) -> None:
    from playwright.sync_api import expect

    blocked: list[str] = []

    def only_local(route: object) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "blob:", "data:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    page.route("**/*", only_local)
    cell = notebook.run("halo_nb.dashboard()")
    root = widget(cell)
    tabs = root.locator(".halo-tab").all_inner_texts()
    assert tabs == ["Traces", "Waterfall", "Clusters", "Insights", "Charts"]
    expect(root.locator(".halo-count")).to_have_text(re.compile(rf"{TRACES + 2} traces"))
    root.locator("[data-tab=charts]").click()
    charts = root.locator(".halo-chart")
    expect(charts).to_have_count(3, timeout=60_000)
    expect(charts.first.locator(".main-svg").first).to_be_attached(timeout=60_000)
    assert blocked == []
    screenshot(root, "dashboard-charts")
    root.locator("[data-tab=clusters]").click()
    light = root.evaluate("el => getComputedStyle(el).backgroundColor")
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
    page.locator(".lm-Menu-itemLabel").get_by_text("JupyterLab Dark", exact=True).click()
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false", timeout=20_000)
    time.sleep(0.5)
    dark = root.evaluate("el => getComputedStyle(el).backgroundColor")
    assert dark != light
    root.locator("[data-tab=traces]").click()
    screenshot(root, "dashboard-dark")
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
    page.locator(".lm-Menu-itemLabel").get_by_text("JupyterLab Light", exact=True).click()
    page.unroute("**/*")


def test_static_report_offline_shows_same_data(notebook: Notebook, analysed: object,
                                               lab: Lab, browser: object) -> None:
    from playwright.sync_api import expect

    cell = notebook.run("print(halo_nb.report('report.html').resolve())")
    path = Path(notebook.text(cell).strip().splitlines()[-1])
    assert path.is_file() and path.parent == lab.root
    counts = json.loads(re.search(r"\{.*\}", notebook.text(notebook.run(
        "print(json.dumps({'traces': halo_nb.trace_table().height,"
        " 'clusters': result.clusters.height}))"))).group(0))
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, offline=True)
    page = context.new_page()
    requests: list[str] = []

    def file_only(route: object) -> None:
        url = route.request.url
        if url.startswith(("file:", "blob:", "data:")):
            route.continue_()
        else:
            requests.append(url)
            route.abort()

    page.route("**/*", file_only)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri())
    root = page.locator(".halo-root")
    expect(root.locator(".halo-count")).to_have_text(f"{counts['traces']} traces")
    root.locator("[data-tab=clusters]").click()
    expect(root.locator("tr.halo-cluster")).to_have_count(counts["clusters"])
    root.locator("tr.halo-cluster .halo-chip").first.click()
    expect(root.locator(".halo-wf-body .halo-row.halo-flagged:visible").first).to_be_visible()
    root.locator(".halo-wf-body .halo-row.halo-flagged:visible").first.click()
    expect(root.locator(".halo-detail .halo-kv").first).to_be_visible()
    root.locator("[data-tab=charts]").click()
    expect(root.locator(".halo-chart")).to_have_count(3, timeout=30_000)
    screenshot(page, "report-offline")
    assert requests == [] and errors == []
    context.close()


def test_no_page_errors(page: object) -> None:
    assert page.errors == []
