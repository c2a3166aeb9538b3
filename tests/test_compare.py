"""Trace comparison: two runs of the same agent, and the alignment cases a real diff meets
(loops, reordering, renames, dropped subtrees, orphans)."""

from __future__ import annotations

import itertools

import polars as pl
import pytest

import halo_nb
from halo_nb.ingest.frame_builder import SpanFrameBuilder
from halo_nb.interchange.compare import compare_traces
from halo_nb.storage.store import UnknownTraceError

KIND_ATTR = "openinference.span.kind"


def build(trace_id: str, tree: dict) -> pl.DataFrame:
    """A trace from a nested spec: {"name", "kind", "children", "status", "ms", **attrs}."""
    b = SpanFrameBuilder()
    counter = itertools.count(1)
    clock = itertools.count(1_700_000_000_000_000_000, 1_000_000)

    def add(node: dict, parent: str | None) -> None:
        span_id = f"{trace_id[:4]}{next(counter):012x}"
        start = next(clock)
        attrs = {KIND_ATTR: node.get("kind", "chain").upper(), **node.get("attrs", {})}
        for child in node.get("children", ()):
            add(child, span_id)
        b.add(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=node["name"],
              start_ns=start, end_ns=start + node.get("ms", 5) * 1_000_000,
              status_code=node.get("status", 0), attributes=attrs)

    add(tree, None)
    return b.build()


def llm(name: str = "llm", tokens: int = 100, output: str = "ok") -> dict:
    return {"name": name, "kind": "llm", "attrs": {"llm.token_count.total": tokens,
                                                    "output.value": output}}


def tool(name: str, result: str = "found", args: str = '{"q": "x"}', status: int = 0) -> dict:
    return {"name": name, "kind": "tool", "status": status,
            "attrs": {"tool.name": name, "input.value": args, "output.value": result}}


def agent(*children: dict, name: str = "agent") -> dict:
    return {"name": name, "kind": "agent", "children": list(children), "ms": 100}


A = "a" * 32
B = "b" * 32


def changes(result) -> list[tuple[str, str]]:
    return [(r["path"], r["change"]) for r in result.frame.iter_rows(named=True)]


def test_two_runs_of_the_same_agent(halo_runtime, send_agent_runs):
    collector = halo_nb.serve()
    first, second = send_agent_runs(collector.url, [
        {},
        {"search_result": "0 articles", "extra_search": True},
    ])
    result = halo_nb.compare(first, second)

    assert changes(result) == [
        ("support-agent", "unchanged"),
        ("support-agent/plan", "unchanged"),
        ("support-agent/search_kb", "changed"),
        ("support-agent/search_web", "added"),
        ("support-agent/answer", "unchanged"),
    ]
    search = result.frame.row(2, named=True)
    assert search["changed_fields"] == ["output", "tool_result"]
    assert search["tool_result_a"] == "3 articles: reset-password, 2fa, sso"
    assert search["tool_result_b"] == "0 articles"
    assert search["tool_args_a"] is None and search["tool_args_b"] is None  # same arguments
    assert search["status_a"] == search["status_b"] == "unset"
    spans = halo_nb.spans()
    assert search["span_id_a"] == spans.filter(pl.col("trace_id") == first,
                                               pl.col("name") == "search_kb")["span_id"][0]
    added = result.frame.row(3, named=True)
    assert added["span_id_a"] is None and added["span_id_b"] is not None
    assert added["tool_result_b"] == "1 page: help.example.com/reset"
    answer = result.frame.row(4, named=True)
    assert (answer["tokens_a"], answer["tokens_b"], answer["tokens_delta"]) == (474, 474, 0)
    assert answer["duration_delta_ms"] == pytest.approx(
        answer["duration_ms_b"] - answer["duration_ms_a"])

    s = result.summary
    assert (s["added"], s["removed"], s["changed"], s["status_changed"], s["unchanged"]) == (
        1, 0, 1, 0, 3)
    assert (s["spans_a"], s["spans_b"]) == (4, 5)
    assert s["first_difference"] == "support-agent/search_kb" and not s["identical"]
    assert (s["tokens_a"], s["tokens_b"], s["tokens_delta"]) == (606, 606, 0)
    assert result.differences().height == 2
    text = result.to_text()
    assert "first difference at support-agent/search_kb" in text
    assert "tool_result '3 articles: reset-password, 2fa, sso' -> '0 articles'" in text
    assert "added  support-agent/search_web" in text
    page = result._repr_html_()
    assert "<pre>" in page and "&#x27;0 articles&#x27;" in page and "<table" in page


def test_a_failed_tool_is_a_status_change(halo_runtime, send_agent_runs):
    collector = halo_nb.serve()
    ok, failed = send_agent_runs(collector.url, [{}, {"fail_search": True}])
    result = halo_nb.compare(ok, failed)
    row = result.frame.filter(pl.col("name") == "search_kb").row(0, named=True)
    assert row["change"] == "status_changed"
    assert (row["status_a"], row["status_b"]) == ("unset", "error")
    assert "status_message" in row["changed_fields"] and "status" in row["changed_fields"]
    assert (result.summary["status_a"], result.summary["status_b"]) == ("unset", "error")


def test_unknown_trace_ids_are_named(halo_runtime):
    halo_nb.store().append(build(A, agent(llm())))
    with pytest.raises(UnknownTraceError, match="f{32}"):
        halo_nb.compare(A, "f" * 32)
    with pytest.raises(ValueError, match="trace A: no spans"):
        compare_traces(halo_nb.spans(A).clear(), halo_nb.spans(A))
    both = pl.concat([build(A, agent(llm())), build(B, agent(llm()))])
    with pytest.raises(ValueError, match="trace B: the frame holds 2 traces"):
        compare_traces(build(A, agent(llm())), both)


def test_an_extra_loop_iteration_aligns_the_rest():
    a = agent(llm(), tool("search"), llm(), tool("search"), llm(output="done"))
    b = agent(llm(), tool("search"), llm(), tool("search"), llm(), tool("search"),
              llm(output="done"))
    result = compare_traces(build(A, a), build(B, b))
    assert [c for _, c in changes(result)].count("added") == 2
    assert result.summary["changed"] == 0 and result.summary["removed"] == 0
    assert result.summary["unchanged"] == 6


def test_a_changed_result_stays_paired_when_an_iteration_is_added():
    a = agent(llm(), tool("search"), llm(), tool("search"), llm(output="done"))
    b = agent(llm(), tool("search", result="none"), llm(), tool("search"), llm(),
              tool("search", status=2), llm(output="done"))
    result = compare_traces(build(A, a), build(B, b))
    assert [c for _, c in changes(result)] == [
        "unchanged", "unchanged", "changed", "unchanged", "unchanged", "added", "added",
        "unchanged"]
    assert result.frame["tool_result_b"][2] == "none"


def test_very_long_sibling_lists_still_align():
    steps = [tool(f"step{i % 7}", result=str(i)) for i in range(700)]
    result = compare_traces(build(A, agent(*steps)),
                            build(B, agent(*steps[:350], tool("extra"), *steps[350:])))
    assert result.summary["added"] == 1 and result.summary["unchanged"] == 701
    assert result.frame.filter(pl.col("change") == "added")["name"].to_list() == ["extra"]


def test_swapped_siblings_are_moves_not_removals():
    result = compare_traces(build(A, agent(tool("fetch"), tool("parse"), llm())),
                            build(B, agent(tool("parse"), tool("fetch"), llm())))
    assert result.summary["added"] == result.summary["removed"] == 0
    moved = result.differences()
    assert moved.height == 1 and moved["changed_fields"].to_list() == [["order"]]
    assert moved["change"].to_list() == ["changed"]


def test_a_renamed_step_in_place_is_paired():
    result = compare_traces(build(A, agent(llm("gpt-4o"), tool("search"))),
                            build(B, agent(llm("gpt-4o-mini"), tool("search"))))
    assert changes(result) == [("agent", "unchanged"), ("agent/gpt-4o-mini", "changed"),
                               ("agent/search", "unchanged")]
    assert result.frame["changed_fields"][1].to_list() == ["name"]


def test_a_dropped_subtree_is_removed_with_its_children():
    sub = agent(tool("lookup"), llm("summarise"), name="researcher")
    result = compare_traces(build(A, agent(llm("plan"), sub, llm("reply"))),
                            build(B, agent(llm("plan"), llm("reply"))))
    assert changes(result) == [
        ("agent", "unchanged"), ("agent/plan", "unchanged"),
        ("agent/researcher", "removed"), ("agent/researcher/lookup", "removed"),
        ("agent/researcher/summarise", "removed"), ("agent/reply", "unchanged")]
    assert result.frame["depth"].to_list() == [0, 1, 1, 2, 2, 1]
    removed = result.frame.filter(pl.col("change") == "removed")
    assert removed["span_id_b"].null_count() == 3 and removed["status_b"].null_count() == 3


def test_changed_arguments_and_token_deltas():
    result = compare_traces(build(A, agent(llm(tokens=100), tool("search", args='{"q": "a"}'))),
                            build(B, agent(llm(tokens=180), tool("search", args='{"q": "b"}'))))
    first_llm, search = result.frame.row(1, named=True), result.frame.row(2, named=True)
    assert first_llm["changed_fields"] == ["tokens_total"] and first_llm["tokens_delta"] == 80
    assert (search["tool_args_a"], search["tool_args_b"]) == ('{"q": "a"}', '{"q": "b"}')
    assert search["tool_result_a"] is None  # results are equal, so not repeated
    assert result.summary["tokens_delta"] == 80


def test_identical_traces():
    tree = agent(llm(), tool("search"), llm())
    result = compare_traces(build(A, tree), build(B, tree))
    assert result.summary["identical"] and result.summary["first_difference"] is None
    assert set(result.frame["change"]) == {"unchanged"}
    assert "the span trees match" in result.to_text()


def test_orphans_and_parent_cycles_still_compare():
    frame = build(A, agent(llm(), tool("search")))
    root = frame["span_id"][frame["parent_span_id"].is_null().arg_max()]
    child = frame.filter(pl.col("name") == "llm")["span_id"][0]
    # The root's parent now points into its own subtree: no span has a null parent.
    cyclic = frame.with_columns(
        pl.when(pl.col("span_id") == root).then(pl.lit(child))
        .otherwise(pl.col("parent_span_id")).alias("parent_span_id"))
    result = compare_traces(frame, cyclic)
    assert result.frame.height == 3
    assert result.summary["spans_a"] == result.summary["spans_b"] == 3
