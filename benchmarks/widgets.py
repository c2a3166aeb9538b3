"""Widget speed in a real JupyterLab + Debian headless Chromium (a benchmark, not a test).

Measures, for a 100,000-trace list and a 10,000-span waterfall:
- run → first paint: from pressing Shift+Enter on the cell to the first data rows painted
  (kernel builds the widget and the Arrow payload, the comm carries it, the browser decodes
  and draws);
- mount → first paint: from the widget's element appearing to the first rows painted;
- scroll frame times: a programmatic scroll of 240 frames, at wheel speed (120 px per frame)
  and as a fast fling (600 px per frame): the interval between animation frames (16.7 ms is
  a full 60 Hz frame) and the renderer's main-thread work per frame (script, style, layout;
  from the DevTools protocol's Performance metrics);
- sort (trace list): a header click to the re-sorted rows painted;
- search: typing in find-in-trace (10,000 spans: names, tools, arguments, input, output,
  attributes, searched in the kernel) or in the trace list's search (span content of every
  trace; includes the list's 120 ms typing pause) to the results painted.

Run from the repository root:  python benchmarks/widgets.py [--traces N] [--spans N] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from browser.lab import CHROMIUM, CHROMIUM_ARGS, Notebook, running_lab  # noqa: E402

WATCH = """() => {
  const known = new Set(document.querySelectorAll('.halo-root'));
  const bench = window.__haloBench = { start: performance.now() };
  const observer = new MutationObserver(() => {
    for (const root of document.querySelectorAll('.halo-root')) {
      if (known.has(root)) continue;
      bench.mount ??= performance.now();
      if (!bench.rows && root.querySelector('.halo-row[data-index]')) {
        bench.rows = performance.now();
        observer.disconnect();
        const painted = () => { bench.paint = performance.now(); };
        requestAnimationFrame(() => requestAnimationFrame(painted));
      }
    }
  });
  observer.observe(document.body, { childList: true, subtree: true });
}"""

SCROLL = """([selector, step]) => new Promise((resolve) => {
  const all = document.querySelectorAll(selector);
  const viewport = all[all.length - 1];
  viewport.scrollTop = 0;
  const gaps = [];
  let last = 0, frames = 0;
  function frame(now) {
    if (last) gaps.push(now - last);
    last = now;
    viewport.scrollTop += step;
    if (++frames < 240) requestAnimationFrame(frame);
    else resolve({ gaps, top: viewport.scrollTop, height: viewport.scrollHeight });
  }
  requestAnimationFrame(frame);
})"""

SORT = """(key) => new Promise((resolve) => {
  const all = document.querySelectorAll(`.halo-root [data-key=${key}]`);
  const header = all[all.length - 1];
  const start = performance.now();
  header.click();
  requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - start)));
})"""


FIND = """([selector, counter, text]) => new Promise((resolve) => {
  const inputs = document.querySelectorAll(selector);
  const input = inputs[inputs.length - 1];
  const counters = document.querySelectorAll(counter);
  const shown = counters[counters.length - 1];
  const start = performance.now();
  let first = 0;
  const done = () => {
    first ||= performance.now() - start;
    if (shown.textContent.includes("searching")) return;
    observer.disconnect();
    requestAnimationFrame(() => requestAnimationFrame(() =>
      resolve({ first, ms: performance.now() - start, shown: shown.textContent })));
  };
  const observer = new MutationObserver(done);
  observer.observe(shown, { childList: true, characterData: true, subtree: true,
    attributes: true });
  input.value = text;
  input.dispatchEvent(new Event("input", { bubbles: true }));
})"""


def search(page: object, selector: str, counter: str, texts: tuple[str, ...]) -> str:
    """Type each text into the newest ``selector`` input; time until ``counter`` first
    changes (what the browser matched itself) and until it shows the kernel's answer
    (the views say "searching…" until then)."""
    runs = [page.evaluate(FIND, [selector, counter, text]) for text in texts]
    return " / ".join(f"{text!r} first {r['first']:.0f} ms, all {r['ms']:.0f} ms "
                      f"({r['shown'].strip()})" for text, r in zip(texts, runs, strict=True))


def stats(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (f"median {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms, "
            f"max {ordered[-1]:.1f} ms ({sum(v > 17.5 for v in ordered)} of {len(ordered)} "
            "frames over 17.5 ms)")


def scroll(page: object, selector: str, step: int) -> str:
    """Scroll the newest viewport matching ``selector``; frame gaps and main-thread work."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")

    def busy() -> float:
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        return metrics["TaskDuration"]

    before = busy()
    result = page.evaluate(SCROLL, [selector, step])
    work = (busy() - before) * 1000 / (len(result["gaps"]) + 1)
    cdp.detach()
    return f"{step} px/frame: {stats(result['gaps'])}; main-thread work {work:.1f} ms/frame"


def display(page: object, notebook: Notebook, code: str) -> dict:
    notebook.type(code)
    page.evaluate(WATCH)
    page.keyboard.press("Shift+Enter")
    page.wait_for_function("() => window.__haloBench && window.__haloBench.paint",
                           timeout=180_000)
    bench = page.evaluate("() => window.__haloBench")
    return {"run_to_paint": bench["paint"] - bench["start"],
            "mount_to_paint": bench["paint"] - bench["mount"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--spans", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as root, tempfile.TemporaryDirectory() as state, \
            running_lab(Path(root), Path(state)) as lab, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        notebook = Notebook(page)
        notebook.open(lab.new_notebook("bench.ipynb"))
        cell = notebook.run(
            "import json, time, halo_nb\n"
            "from browser.corpus import many_traces, wide_trace\n"
            "from halo_nb.widgets.arrow import frame_to_ipc\n"
            "from halo_nb.widgets.payloads import trace_rows, waterfall_message\n"
            "store = halo_nb.store()\n"
            f"store.append(many_traces({args.traces}))\n"
            f"store.append(wide_trace({args.spans}))\n"
            "wide = store.traces().sort('span_count')['trace_id'][-1]\n"
            "from halo_nb.storage.traces_summary import summarise_traces\n"
            "t = time.perf_counter(); table = summarise_traces(store.spans())\n"
            "t_table = time.perf_counter() - t\n"
            "t = time.perf_counter(); rows = frame_to_ipc(trace_rows(table))\n"
            "t_rows = time.perf_counter() - t\n"
            "t = time.perf_counter(); _, [spans] = waterfall_message(store.spans(wide), wide, [])\n"
            "t_spans = time.perf_counter() - t\n"
            "print(json.dumps({'traces': table.height, 'table_s': t_table, 'rows_s': t_rows,\n"
            "  'rows_mb': len(rows) / 1e6, 'spans_s': t_spans, 'spans_mb': len(spans) / 1e6}))",
            timeout_ms=600_000)
        kernel = json.loads(re.search(r"\{.*\}", notebook.text(cell)).group(0))
        lists = [display(page, notebook, "halo_nb.traces()") for _ in range(args.repeat)]
        list_scroll = [scroll(page, ".halo-traces-body", step) for step in (120, 600)]
        sorts = [page.evaluate(SORT, key) for key in ("duration_ms", "name", "tokens_total")]
        list_search = search(page, ".halo-tracelist input.halo-input", ".halo-count",
                             ("agent-7", "question 4242", "no-such-text"))
        falls = [display(page, notebook, "halo_nb.waterfall(wide)") for _ in range(args.repeat)]
        fall_scroll = [scroll(page, ".halo-wf-body", step) for step in (120, 600)]
        find = search(page, "input.halo-find", ".halo-find-count",
                      ("llm-7", "tool", "retriever-3", "no-such-text"))
        browser.close()

    def median(runs: list[dict], key: str) -> str:
        return f"{statistics.median(r[key] for r in runs):.0f} ms"

    print(f"halo_nb widget benchmark (JupyterLab + headless Chromium, {args.repeat} runs each)")
    print(f"kernel: trace table of {kernel['traces']:,} traces {kernel['table_s']:.2f} s; "
          f"trace-list Arrow {kernel['rows_mb']:.1f} MB in {kernel['rows_s']:.2f} s; "
          f"{args.spans:,}-span waterfall Arrow {kernel['spans_mb']:.2f} MB in "
          f"{kernel['spans_s']:.3f} s")
    print(f"trace list ({kernel['traces']:,} traces): run → first paint "
          f"{median(lists, 'run_to_paint')}, mount → first paint "
          f"{median(lists, 'mount_to_paint')}")
    for line in list_scroll:
        print(f"  scroll {line}")
    print("  sort by duration / name / tokens: "
          + " / ".join(f"{s:.0f} ms" for s in sorts))
    print(f"  search (span content of every trace): {list_search}")
    print(f"waterfall ({args.spans:,} spans): run → first paint {median(falls, 'run_to_paint')}, "
          f"mount → first paint {median(falls, 'mount_to_paint')}")
    for line in fall_scroll:
        print(f"  scroll {line}")
    print(f"  find in trace ({args.spans:,} spans): {find}")


if __name__ == "__main__":
    main()
