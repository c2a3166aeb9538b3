"""Each built-in detector on small traces built through SpanFrameBuilder: what it
catches, what it leaves alone, and that it works in every attribute convention."""

from __future__ import annotations

import json

import pytest
from test_rlm_support import agent, analyze, build, found, llm, react, tool

from evaluation.corpus import CONVENTIONS, LOOKUP_ORDER, WEB_SEARCH, Node
from halo_nb.ingest.frame_builder import SpanFrameBuilder

EMPTY_ROUND = (llm("CALL web_search python asyncio"), tool(result="[]"))
GOOD_ROUND = (llm("CALL web_search python asyncio"), tool())


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_empty_result_not_handled(convention):
    root = react(EMPTY_ROUND, final="Based on the results, asyncio is great.")
    result = analyze(build(root, convention=convention))
    hits = found(result, "empty_tool_result")
    assert [h["span_id"] for h in hits] == [root.children[1].span_id]
    assert hits[0]["evidence"]["result"] == "empty"
    assert hits[0]["span_path"] == "research_agent/tool:web_search"
    assert hits[0]["severity"] == "medium" and hits[0]["layer"] == 1


@pytest.mark.parametrize("reaction", [
    "I could not find any sources on asyncio.", "No results were returned, sorry."])
def test_empty_result_acknowledged_is_handled(reaction):
    result = analyze(build(react(EMPTY_ROUND, final=reaction)))
    assert found(result, "empty_tool_result") == []


def test_empty_result_followed_by_reformulation_is_handled():
    root = react(EMPTY_ROUND, (llm("CALL web_search"), tool({"query": "event loop tutorial"})))
    result = analyze(build(root))
    assert found(result, "empty_tool_result") == [] and found(result, "retry_loop") == []


def test_missing_result_is_reported_only_with_content_capture():
    root = react((llm("CALL"), tool(result=None)))
    assert found(analyze(build(root)), "empty_tool_result")[0]["evidence"]["result"] == "missing"
    assert found(analyze(build(react((llm("CALL"), tool(result=None))), content=False))) == []


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_tool_error_reported_where_it_started(convention):
    failing = tool(result=None, error=("TimeoutError", "search backend 10.0.0.7 timed out"))
    root = agent(llm("CALL"), failing, llm("answer from memory"))
    root.error = ("ToolError", "a tool failed")  # the agent passes the failure on
    result = analyze(build(root, convention=convention))
    hits = found(result, "error_status")
    assert [h["span_id"] for h in hits] == [failing.span_id]
    assert hits[0]["signature"].endswith("|TimeoutError")
    assert found(result, "failure_words") == []  # an ERROR span is error_status's business


def test_retry_loop_after_empty_result():
    root = react(EMPTY_ROUND, (llm("CALL again"), tool({"query": "Python  AsyncIO"}, "[]")),
                 (llm("CALL again"), tool({"query": "python asyncio "})))
    result = analyze(build(root))
    calls = [c for c in root.children if c.kind == "tool"]
    retries = found(result, "retry_loop")
    assert [r["span_id"] for r in retries] == [calls[1].span_id, calls[2].span_id]
    assert [r["evidence"]["attempt"] for r in retries] == [2, 3]
    assert retries[0]["evidence"]["previous_span_id"] == calls[0].span_id
    assert {h["span_id"] for h in found(result, "empty_tool_result")} == {
        calls[0].span_id, calls[1].span_id}


def test_different_numbers_are_not_a_retry():
    root = react((llm("CALL"), tool({"query": "results page 1"}, "[]")),
                 (llm("CALL"), tool({"query": "results page 2"})))
    assert found(analyze(build(root)), "retry_loop") == []


def test_retry_after_error_seen_without_content():
    failing = tool(error=("ConnectionError", "refused"), result=None)
    root = agent(llm("CALL"), failing, llm("CALL"), tool(), llm("done"))
    hits = found(analyze(build(root, content=False)), "retry_loop")
    assert len(hits) == 1 and hits[0]["evidence"]["previous_outcome"] == "error"
    assert hits[0]["evidence"]["args_similarity"] is None


def test_calls_in_other_branches_are_not_retries():
    step1 = agent(llm("CALL"), tool(result="[]"), name="step 1", kind="chain")
    step2 = agent(llm("CALL"), tool(), name="step 2", kind="chain")
    result = analyze(build(agent(step1, step2, name="planner_agent")))
    assert found(result, "retry_loop") == []


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_hallucinated_tool(convention):
    root = react((llm("CALL", declared=[WEB_SEARCH]), tool(name="browse_web")),
                 (llm("CALL", declared=[WEB_SEARCH]), tool()))
    hits = found(analyze(build(root, convention=convention)), "hallucinated_tool")
    assert [h["span_id"] for h in hits] == [root.children[1].span_id]
    assert hits[0]["evidence"]["declared_tools"] == ["web_search"]


def test_declared_tools_as_an_unflattened_openinference_list():
    builder = SpanFrameBuilder()
    tools = [json.dumps(LOOKUP_ORDER), json.dumps(WEB_SEARCH)]
    common = {"trace_id": "ab" * 16, "start_ns": 10**18}
    builder.add(span_id="1" * 16, parent_span_id=None, name="agent", end_ns=10**18 + 10**9,
                attributes={"openinference.span.kind": "AGENT"}, **common)
    builder.add(span_id="2" * 16, parent_span_id="1" * 16, name="ChatCompletion",
                end_ns=10**18 + 10**8, attributes={"openinference.span.kind": "LLM",
                                                  "llm.tools": tools}, **common)
    common["start_ns"] += 2 * 10**8
    builder.add(span_id="3" * 16, parent_span_id="1" * 16, name="send_email",
                end_ns=common["start_ns"] + 10**8, attributes={
                    "openinference.span.kind": "TOOL", "tool.name": "send_email"}, **common)
    hits = found(analyze(builder.build()), "hallucinated_tool")
    assert [h["span_id"] for h in hits] == ["3" * 16]
    assert hits[0]["evidence"]["declared_tools"] == ["lookup_order", "web_search"]


@pytest.mark.parametrize(("args", "violation"), [
    ({"q": "x"}, "required:query"), ({"query": 42}, "type:query"),
    ({"query": "x", "max_results": "ten"}, "type:max_results"),
    ({"query": "x", "lang": "en"}, "additional:lang")])
def test_tool_arguments_break_the_schema(args, violation):
    root = react((llm("CALL", declared=[WEB_SEARCH]), tool(args)))
    hits = found(analyze(build(root)), "tool_schema_violation")
    assert len(hits) == 1 and hits[0]["evidence"]["violations"][0] == violation


def test_valid_arguments_pass_the_schema():
    root = react((llm("CALL", declared=[WEB_SEARCH]), tool({"query": "x", "max_results": 3})))
    assert found(analyze(build(root)), "tool_schema_violation") == []


def test_context_growth_without_content():
    calls = [llm(f"step {i}", tokens_in=t) for i, t in enumerate((600, 1300, 2600, 5200))]
    result = analyze(build(agent(*calls), content=False))
    hits = found(result, "context_growth")
    assert [h["span_id"] for h in hits] == [calls[-1].span_id]
    assert hits[0]["evidence"]["tokens_in"] == [600, 1300, 2600, 5200]


def test_mild_growth_of_a_normal_react_loop_is_fine():
    calls = [llm(f"step {i}", tokens_in=t) for i, t in enumerate((600, 800, 1000, 1200))]
    assert found(analyze(build(agent(*calls))), "context_growth") == []
    # history growth of small numbers is not context growth, whatever the ratio
    calls = [llm(f"step {i}", tokens_in=t) for i, t in enumerate((31, 107, 173, 249))]
    assert found(analyze(build(agent(*calls))), "context_growth") == []


def test_growth_to_half_the_context_window_is_reported():
    calls = [llm(f"step {i}", tokens_in=t) for i, t in enumerate((40_000, 52_000, 66_000))]
    hits = found(analyze(build(agent(*calls))), "context_growth")
    assert [h["span_id"] for h in hits] == [calls[-1].span_id]
    assert hits[0]["evidence"]["context_window"] == 128_000


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_truncation_follows_growth(convention):
    calls = [llm(f"step {i}", tokens_in=t) for i, t in enumerate((600, 1300, 2600))]
    cut = llm("The answer is", tokens_in=3000, finish="length")
    result = analyze(build(agent(*calls, cut), convention=convention))
    assert [h["span_id"] for h in found(result, "truncation")] == [cut.span_id]
    assert [h["span_id"] for h in found(result, "context_growth")] == [cut.span_id]


def test_repeated_identical_output():
    first, again = llm("Let me think about asyncio."), llm("let me think  about asyncio.")
    result = analyze(build(agent(first, tool(), again, llm("done"))))
    hits = found(result, "repeated_output")
    assert [h["span_id"] for h in hits] == [again.span_id]
    assert hits[0]["evidence"]["first_span_id"] == first.span_id


def test_identical_retry_requests_are_left_to_retry_loop():
    ask = "CALL web_search python asyncio"
    root = agent(llm(ask), tool(result="[]"), llm(ask), tool(), llm("done"))
    result = analyze(build(root))
    assert found(result, "repeated_output") == [] and len(found(result, "retry_loop")) == 1


def test_agent_loop_on_one_tool():
    rounds = [(llm(f"CALL {i}"), tool({"query": f"topic {i}"})) for i in range(6)]
    root = react(*rounds)
    hits = found(analyze(build(root, content=False)), "agent_loop")
    assert [h["span_id"] for h in hits] == [root.span_id]
    assert hits[0]["evidence"]["calls"] == 6
    four = react(*[(llm(f"CALL {i}"), tool({"query": f"topic {i}"})) for i in range(4)])
    assert found(analyze(build(four)), "agent_loop") == []


def _runs(n: int, slow: float | None = None, tokens: int | None = None) -> list[Node]:
    runs = []
    for i in range(n):
        runs.append(react((llm(f"CALL {i}", dur=700 + 13 * (i % 9), tokens_out=90 + i % 7),
                           tool({"query": f"q{i}"}, dur=300 + 11 * (i % 7)))))
    if slow is not None:
        runs[-1].children[1].dur_ms = slow
    if tokens is not None:
        runs[-1].children[0].tokens_out = tokens
    return runs


def test_latency_outlier_on_the_slow_span_not_its_parents():
    runs = _runs(30, slow=12_000)
    result = analyze(build(*runs))
    hits = found(result, "latency_outlier")
    assert [h["span_id"] for h in hits] == [runs[-1].children[1].span_id]
    assert hits[0]["evidence"]["median_ms"] == pytest.approx(333, abs=40)


def test_token_outlier():
    runs = _runs(30, tokens=4000)
    hits = found(analyze(build(*runs)), "token_outlier")
    assert [h["span_id"] for h in hits] == [runs[-1].children[0].span_id]


def test_outliers_need_enough_samples():
    runs = _runs(8, slow=12_000, tokens=4000)  # 8 tool and 16 LLM spans: under 20
    result = analyze(build(*runs))
    assert found(result, "latency_outlier") == [] and found(result, "token_outlier") == []


def test_never_ended_reported_where_the_trace_got_stuck():
    stuck = tool()
    stuck.ended = False
    root = agent(llm("CALL"), stuck)
    root.ended = False
    later = react(GOOD_ROUND)
    result = analyze(build((root, {}), (later, {})))
    hits = found(result, "never_ended")
    assert [h["span_id"] for h in hits] == [stuck.span_id]
    assert hits[0]["severity"] == "high" and hits[0]["evidence"]["open_ancestors"] == 1
    alone = analyze(build(agent(llm("CALL"), stuck)))  # the newest trace may still run
    assert found(alone, "never_ended")[0]["severity"] == "info"


def test_no_output():
    root = react(GOOD_ROUND, output=None)
    hits = found(analyze(build(root)), "no_output")
    assert [h["span_id"] for h in hits] == [root.span_id]
    assert found(analyze(build(react(GOOD_ROUND, output=None), content=False))) == []


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_failure_words_behind_an_ok_status(convention):
    quiet = tool(result=json.dumps({"success": False, "error": "rate limit exceeded"}))
    echo = llm("The search hit a rate limit, answering anyway.")
    root = agent(llm("CALL", input="please do not timeout"), quiet, echo)
    hits = found(analyze(build(root, convention=convention)), "failure_words")
    assert [h["span_id"] for h in hits] == [quiet.span_id]
    assert hits[0]["evidence"]["terms"] == ["exceeded", "rate_limit", "success_false"]
    assert hits[0]["evidence"]["echo_span_ids"] == [echo.span_id]


def test_failure_words_in_attributes():
    builder = SpanFrameBuilder()
    builder.add(trace_id="cd" * 16, span_id="1" * 16, parent_span_id=None, name="job",
                start_ns=10**18, end_ns=10**18 + 10**9, status_code=1,
                attributes={"halo.span.type": "chain", "job.success": False,
                            "input.value": "max turns: 3"})
    hits = found(analyze(builder.build()), "failure_words")
    assert len(hits) == 1 and hits[0]["evidence"]["where"] == {
        "success_false": "attribute job.success"}


def test_failure_words_not_in_keys_parameters_or_prose():
    builder = SpanFrameBuilder()
    builder.add(trace_id="ce" * 16, span_id="2" * 16, parent_span_id=None, name="chat",
                start_ns=10**18, end_ns=10**18 + 10**9, status_code=1,
                attributes={"gen_ai.operation.name": "chat",
                            "model_request_parameters": json.dumps({"timeout": None}),
                            "gen_ai.output.messages": "[]",
                            "output.value": "The walk slightly exceeds five minutes.",
                            "tool.result": json.dumps({"timeout": 30, "ok": True})})
    assert found(analyze(builder.build()), "failure_words") == []


def test_repeated_none_output_is_not_repetition():
    result = analyze(build(agent(llm("None"), tool(), llm("None"), llm("done"))))
    assert found(result, "repeated_output") == []


def test_orphans_cycles_and_clock_skew_are_flagged_not_fatal():
    orphan_parent = agent(llm("a"), tool(), name="sub_agent")
    root = agent(llm("plan"), orphan_parent)
    dropped = {id(orphan_parent)}
    cyclic = agent(llm("x"), tool())
    skewed = agent(llm("x"), tool())
    result = analyze(build(
        (root, {"dropped": dropped}),
        (cyclic, {"parent_override": {id(cyclic): cyclic.children[0]}}),
        (skewed, {"skew": skewed.children[1]})))
    hits = {h["evidence"]["issue"]: h for h in found(result, "trace_integrity")}
    assert hits["orphan"]["span_id"] == orphan_parent.children[0].span_id
    assert hits["orphan"]["evidence"]["orphan_span_ids"] == [
        c.span_id for c in orphan_parent.children]
    assert hits["cycle"]["span_id"] == cyclic.span_id
    assert hits["clock_skew"]["span_id"] == skewed.children[1].span_id
    assert hits["clock_skew"]["severity"] == "info"
    assert result.detector_errors == []


def test_layers_below_analysis_depth_are_summarised():
    leaf = tool(result="[]")
    deep = agent(llm("CALL"), leaf, llm("done"), name="level_d", kind="chain")
    for level in "cba":
        deep = agent(deep, name=f"level_{level}", kind="chain")
    root = agent(deep, name="root_agent")
    full = found(analyze(build(root), analysis_depth=10), "empty_tool_result")[0]
    assert full["layer"] == 5
    assert full["span_path"] == "root_agent/level_a/level_b/level_c/level_d/tool:web_search"
    capped = found(analyze(build(root), analysis_depth=2), "empty_tool_result")[0]
    assert capped["layer"] == 2 and capped["span_path"] == "root_agent/level_a/level_b/**"
    assert capped["span_id"] == leaf.span_id
    assert "summarised_under_span_id" in capped["evidence"]


def test_loop_through_per_step_wrappers_is_found_at_any_depth():
    # openai-agents opens a "turn" span per step: the six turns are one agent's loop
    rounds = [agent(llm(f"CALL {i}"), tool({"query": "weather Paris"}), name="turn",
                    kind="chain") for i in range(6)]
    root = agent(agent(*rounds, name="worker", kind="chain"), name="boss")
    for depth in (1, 3):
        hits = found(analyze(build(root), analysis_depth=depth), "agent_loop")
        assert [h["span_id"] for h in hits] == [root.children[0].span_id]
        assert hits[0]["severity"] == "high" and hits[0]["evidence"]["distinct_args"] == 1


def test_fan_out_over_different_arguments_is_not_a_loop():
    cities = ("Rome", "Berlin", "Madrid", "Vienna", "Prague", "Lisbon")
    root = react(*[(llm(f"CALL {c}"), tool({"city": c})) for c in cities])
    assert found(analyze(build(root)), "agent_loop") == []


def test_loop_with_slightly_varied_arguments_is_medium():
    root = react(*[(llm(f"CALL {i}"), tool({"query": f"volcanic soil angle {i}"}))
                   for i in range(6)])
    assert [h["severity"] for h in found(analyze(build(root)), "agent_loop")] == ["medium"]


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_no_content_gives_structural_findings_only(convention):
    failing = tool(error=("ConnectionError", "refused"), result=None)
    stuck = tool()
    stuck.ended = False
    broken = agent(llm("CALL"), stuck)
    broken.ended = False
    traces = [react(EMPTY_ROUND, (llm("CALL", finish="length"), failing)), broken,
              react(GOOD_ROUND, output=None)]
    frame = build(*traces, convention=convention, content=False)
    assert frame.select("input", "output", "tool_args", "tool_result").null_count().row(0) == (
        len(frame),) * 4
    result = analyze(frame)
    assert result.detector_errors == []
    assert {h["detector"] for h in found(result)} == {"error_status", "truncation",
                                                      "never_ended"}


def test_very_deep_and_very_wide_traces():
    """A 3,000-level chain and a 4,000-call loop: no recursion limit, no quadratic walk."""
    builder = SpanFrameBuilder()
    t0 = 10**18
    for depth in range(3000):
        builder.add(trace_id="d" * 32, span_id=f"{depth + 1:016x}",
                    parent_span_id=f"{depth:016x}" if depth else None, name=f"level {depth}",
                    start_ns=t0 + depth, end_ns=t0 + 10**9 - depth,
                    attributes={"halo.span.type": "chain"})
    builder.add(trace_id="e" * 32, span_id="f" * 16, parent_span_id=None, name="agent",
                start_ns=t0, end_ns=t0 + 10**10, attributes={"halo.span.type": "agent"})
    for i in range(4000):
        builder.add(trace_id="e" * 32, span_id=f"{i + 1:016x}", parent_span_id="f" * 16,
                    name="web_search", start_ns=t0 + i * 10**6, end_ns=t0 + i * 10**6 + 5,
                    attributes={"halo.span.type": "tool", "tool.name": "web_search",
                                "input.value": '{"query": "same"}', "output.value": "[]"})
    result = analyze(builder.build())
    assert result.detector_errors == []
    assert result.findings.filter(result.findings["trace_id"] == "d" * 32).is_empty()
    hits = found(result)
    assert sum(h["detector"] == "retry_loop" for h in hits) == 3999
    assert [h["span_id"] for h in hits if h["detector"] == "agent_loop"] == ["f" * 16]


def test_span_graph_shape():
    from halo_nb.rlm.engine import _group
    from halo_nb.rlm.graph import ROOT, TraceView
    from halo_nb.rlm.prepare import prepare

    lost = agent(llm("a"), name="sub_agent")
    root = agent(llm("plan"), tool(), lost)
    frame = build((root, {"dropped": {id(lost)}}))
    (trace_id, nodes), = list(_group(prepare(frame.sample(fraction=1.0, shuffle=True, seed=1))))
    trace = TraceView(trace_id, nodes, analysis_depth=3)
    graph = trace.graph
    assert list(graph.successors(ROOT)) == [root.span_id, lost.children[0].span_id]
    assert list(graph.successors(root.span_id)) == [root.children[0].span_id,
                                                   root.children[1].span_id]
    assert graph.number_of_nodes() == 5 and graph.number_of_edges() == 4
    assert trace.root is None  # two top-level spans: the real root and an orphan
    assert [(i, r) for i, r, _ in trace.integrity] == [(lost.children[0].span_id, "orphan")]
    assert trace.parent(trace.by_id[root.children[1].span_id]).span_id == root.span_id
