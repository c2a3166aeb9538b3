"""The engine end to end: result contract, determinism, thresholds, the quickstart
scenario, the evaluation targets on a generated corpus, and the plugin API."""

from __future__ import annotations

import json
import random
import sys
import textwrap

import polars as pl
import pytest
from test_rlm_support import agent, analyze, build, found, llm, react, tool

from evaluation.corpus import generate
from evaluation.scoring import adjusted_rand_index, purity, report, score
from halo_nb.ingest.frame_builder import SpanFrameBuilder
from halo_nb.rlm import Hit, detector, registry, unregister
from halo_nb.rlm.result import CLUSTERS_SCHEMA, FINDINGS_SCHEMA, HYPOTHESES_SCHEMA

SEVERITY = pl.Enum(["info", "low", "medium", "high", "critical"])
S = 1_000_000_000


def research_agent_runs(n_runs: int, seed: int) -> tuple[pl.DataFrame, int]:
    """The quickstart's research agent as the halo SDK records it (OpenInference
    attributes): web_search returns nothing about half the time and the agent retries the
    same query up to three times. Returns the frame and how many runs retried."""
    rng = random.Random(seed)
    builder = SpanFrameBuilder()
    retried = 0
    for run in range(n_runs):
        trace_id, t = f"{rng.getrandbits(128):032x}", 1_767_225_600 * S + run * 90 * S
        root = f"{rng.getrandbits(64):016x}"
        query = rng.choice(["python asyncio", "jupyter widgets", "roman aqueducts",
                            "tidal energy", "polars lazy frames", "coral reefs"])
        spans, cursor, found_any, attempts = [], t + 5_000_000, False, 0
        for attempt in range(4):
            attempts += 1
            llm_id, tool_id = f"{rng.getrandbits(64):016x}", f"{rng.getrandbits(64):016x}"
            llm_end = cursor + rng.randint(400, 900) * 1_000_000
            spans.append((llm_id, "llm", cursor, llm_end, {
                "openinference.span.kind": "LLM", "llm.model_name": "SmolLM2-135M-Instruct",
                "llm.token_count.prompt": 180 + 40 * attempt,
                "llm.token_count.completion": rng.randint(8, 20),
                "input.value": f"Research: {query}", "output.value": f"SEARCH: {query}"}))
            empty = rng.random() < 0.5
            tool_end = llm_end + rng.randint(50, 300) * 1_000_000
            result = rng.choice(["[]", ""]) if empty else json.dumps(
                [{"title": f"{query} guide", "url": "https://example.org/1"}])
            spans.append((tool_id, "web_search", llm_end + 1_000_000, tool_end, {
                "openinference.span.kind": "TOOL", "tool.name": "web_search",
                "input.value": json.dumps({"query": query}), "output.value": result}))
            cursor = tool_end + 2_000_000
            if not empty:
                found_any = True
                break
        retried += attempts > 1
        answer = (f"Here is a summary about {query}." if found_any else
                  f"I could not find anything about {query}.")
        final = f"{rng.getrandbits(64):016x}"
        end = cursor + 600_000_000
        spans.append((final, "llm", cursor, end, {
            "openinference.span.kind": "LLM", "llm.model_name": "SmolLM2-135M-Instruct",
            "llm.token_count.prompt": 400, "llm.token_count.completion": 60,
            "input.value": f"Answer: {query}", "output.value": answer}))
        builder.add(trace_id=trace_id, span_id=root, parent_span_id=None,
                    name="research_agent", start_ns=t, end_ns=end + 1_000_000, status_code=1,
                    attributes={"openinference.span.kind": "AGENT", "input.value": query,
                                "output.value": answer},
                    resource={"service.name": "research-agent"})
        for span_id, name, start, stop, attrs in spans:
            builder.add(trace_id=trace_id, span_id=span_id, parent_span_id=root, name=name,
                        start_ns=start, end_ns=stop, status_code=1, attributes=attrs)
    return builder.build(), retried


def test_quickstart_scenario_one_retry_loop_cluster():
    frame, retried = research_agent_runs(16, seed=5)
    assert 3 <= retried <= 13
    result = analyze(frame)
    assert result.systemic and result.trace_count == 16 and result.detector_errors == []
    hyps = result.hypotheses.filter(pl.col("rule") == "retry_after_empty").to_dicts()
    assert len(hyps) == 1
    cluster = result.cluster(hyps[0]["cluster_id"])
    assert cluster["title"] == "tool retry loop after empty results"
    assert abs(cluster["trace_count"] - retried) <= 1
    assert cluster["prevalence"] == pytest.approx(retried / 16, abs=1 / 16)
    assert cluster["span_path"] == "research_agent/tool:web_search"
    assert cluster["earliest_signal"].startswith("empty_tool_result|")
    assert "reformulat" in hyps[0]["hypothesis"] and "reformulate" in hyps[0]["suggested_fix"]
    tool_spans = set(frame.filter(pl.col("kind") == "tool")["span_id"])
    assert hyps[0]["evidence_span_ids"] and set(hyps[0]["evidence_span_ids"]) <= tool_spans
    assert set(hyps[0]["evidence_trace_ids"]) <= set(cluster["trace_ids"])
    assert 0.5 < hyps[0]["confidence"] <= 1.0
    assert cluster["lift"] is None or cluster["lift"] >= 1.0
    assert hyps[0]["narrative"] is None and result.model_status.startswith("unavailable:")


def test_result_contract():
    frame, _ = research_agent_runs(12, seed=2)
    result = analyze(frame)
    for df, schema in ((result.findings, FINDINGS_SCHEMA), (result.clusters, CLUSTERS_SCHEMA),
                       (result.hypotheses, HYPOTHESES_SCHEMA)):
        assert dict(df.schema) == schema
    assert result.findings.schema["severity"] == SEVERITY
    assert result.findings.schema["layer"] == pl.Int32
    assert result.clusters["cluster_id"].to_list() == [
        f"C{i + 1}" for i in range(len(result.clusters))]
    assert result.clusters["prevalence"].is_sorted(descending=True)
    for row in result.findings.to_dicts():
        assert isinstance(json.loads(row["evidence"]), dict)
    exported = json.loads(json.dumps(result.to_dict()))
    assert exported["trace_count"] == 12 and exported["settings"]["model"] == "none"
    assert len(exported["findings"]) == len(result.findings)
    assert "<table>" in result._repr_html_() and "C1" in repr(result)


def test_same_input_same_output_whatever_the_row_order():
    corpus = generate(90, seed=4)
    first = analyze(corpus.spans).to_dict()
    shuffled = corpus.spans.sample(fraction=1.0, shuffle=True, seed=9)
    second = analyze(shuffled).to_dict()
    assert first == second


def test_below_the_threshold_findings_but_no_clusters():
    frame = build(*[react((llm("CALL"), tool(result="[]")), final="so it goes")
                    for _ in range(4)])
    result = analyze(frame)
    assert not result.systemic
    assert result.note.startswith("systemic analysis needs at least 10 traces; got 4")
    assert len(result.findings) == 4 and result.clusters.is_empty()
    assert result.hypotheses.is_empty()
    assert result.findings["cluster_id"].null_count() == 4
    off = analyze(frame, min_traces_for_systemic_analysis=2, cross_trace_correlation=False)
    assert not off.systemic and "switched off" in off.note
    on = analyze(frame, min_traces_for_systemic_analysis=2)
    assert on.systemic and len(on.clusters) == 1


def test_empty_and_bad_input():
    empty = analyze(build())
    assert empty.trace_count == 0 and empty.findings.is_empty()
    with pytest.raises(ValueError, match="missing column.*attributes"):
        analyze(build(react((llm(), tool()))).drop("attributes"))
    with pytest.raises(TypeError, match="polars DataFrame"):
        analyze([{"trace_id": "x"}])


def test_lift_and_causal_chain():
    failing = [react((llm("CALL"), tool(error=("RateLimitError", "429 slow down"), result=None)),
                     final="gave up") for _ in range(6)]
    for trace in failing:
        trace.error = ("AgentError", "run failed")
    fine = [react((llm("CALL"), tool())) for _ in range(12)]
    result = analyze(build(*failing, *fine))
    cluster = result.clusters.row(0, named=True)
    assert cluster["detector"] == "error_status" and cluster["trace_count"] == 6
    assert cluster["failed_trace_count"] == 6 and cluster["lift"] == pytest.approx(3.0)
    assert cluster["severity"] == "high"


def test_eval_targets_on_a_seeded_corpus():
    corpus = generate(270, seed=11)
    result = analyze(corpus.spans)
    s = score(corpus, result)
    print(report(s))
    assert result.detector_errors == []
    assert {d.detector for d in s.detectors} >= {
        "empty_tool_result", "error_status", "retry_loop", "hallucinated_tool",
        "tool_schema_violation", "context_growth", "truncation", "repeated_output",
        "agent_loop", "latency_outlier", "token_outlier", "never_ended", "no_output",
        "failure_words", "trace_integrity"}
    for d in s.detectors:
        assert d.true_positives > 0, d.detector
        assert d.precision >= 0.95 and d.recall >= 0.95, (d.detector, s.mistakes.get(d.detector))
    assert s.clean_traces > 40 and s.clean_traces_above_info == 0
    assert s.ari >= 0.9 and s.purity >= 0.9


def test_ari_and_purity():
    assert adjusted_rand_index(list("aabbcc"), list("xxyyzz")) == pytest.approx(1.0)
    assert adjusted_rand_index(list("aabb"), list("abab")) == pytest.approx(-0.5)
    assert purity(list("aaab"), list("xxxx")) == pytest.approx(0.75)


@pytest.fixture
def plugin_cleanup():
    names = []
    yield names
    for name in names:
        unregister(name)


def test_user_defined_detector(plugin_cleanup):
    @detector("slow_guardrail", severity="low", kinds=("guardrail",),
              hypothesis="The moderation call at {path} is slow.", fix="Cache moderation.")
    def slow_guardrail(span, ctx):
        """A guardrail span over two seconds."""
        if (span.duration_ms or 0) > 2000:
            return Hit(span.span_id, "slow guardrail", {"ms": span.duration_ms})
        return None

    @detector("broken_plugin", scope="trace")
    def broken_plugin(trace):
        """Always fails."""
        raise RuntimeError("boom")

    plugin_cleanup += ["slow_guardrail", "broken_plugin"]
    traces = []
    for i in range(12):
        guard = agent(name="moderation", kind="guardrail")
        guard.dur_ms = 2500 if i % 3 == 0 else 100
        traces.append(react((llm("CALL"), tool()), output="ok" if i else None))
        traces[-1].children.insert(0, guard)
    result = analyze(build(*traces))
    hits = found(result, "slow_guardrail")
    assert len(hits) == 4 and hits[0]["span_path"] == "research_agent/moderation"
    hyp = result.hypotheses.filter(pl.col("rule") == "plugin:slow_guardrail").row(0, named=True)
    assert hyp["hypothesis"] == "The moderation call at research_agent/moderation is slow."
    assert len(result.detector_errors) == 12 and "RuntimeError: boom" in result.detector_errors[0]
    assert len(found(result, "no_output")) == 1  # the other detectors still ran


def test_detector_registration_errors(plugin_cleanup):
    with pytest.raises(ValueError, match="severity"):
        detector("bad", severity="urgent")(lambda s, c: None)
    with pytest.raises(ValueError, match="already registered"):
        detector("retry_loop")(lambda s, c: None)


def test_entry_point_plugin(tmp_path, plugin_cleanup, monkeypatch):
    (tmp_path / "halo_demo_plugin.py").write_text(textwrap.dedent('''
        from halo_nb.rlm import Hit, detector

        @detector("demo_long_name", severity="info", kinds=("tool",))
        def demo_long_name(span, ctx):
            """Tool names longer than ten characters."""
            if len(span.tool_name or "") > 10:
                return Hit(span.span_id, "long tool name")
    '''))
    dist = tmp_path / "halo_demo_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: halo-demo-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[halo_nb.detectors]\ndemo = halo_demo_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin_cleanup.append("demo_long_name")
    registry.reload_plugins()
    try:
        assert "demo_long_name" in {d.name for d in registry.registered()}
        result = analyze(build(react((llm("CALL"), tool(name="lookup_customer_record")))))
        assert [h["detector"] for h in found(result, "demo_long_name")] == ["demo_long_name"]
    finally:
        sys.modules.pop("halo_demo_plugin", None)


def test_quickstart_through_the_sdk_store_and_public_api(halo_runtime):
    """The same scenario recorded by the real halo SDK into the kernel's store, analysed
    through ``halo_nb.analyze()``."""
    import halo_nb
    from halo_nb import sdk

    rng = random.Random(21)
    topics = ["neptune moons", "aurora borealis", "mariana trench", "carbon dating",
              "miso ingredients", "continental drift"]
    retried = 0
    for _ in range(14):
        query = rng.choice(topics)
        trace = sdk.start_trace("research_agent", input=f"Tell me about {query}")
        for attempt in range(4):
            with sdk.span(trace, name="chat smollm2-135m-instruct", type="llm",
                          model="smollm2-135m-instruct") as call:
                call.set_input([{"role": "user", "content": f"Research {query}"}])
                call.set_output(f"SEARCH: {query}")
                call.record_tokens(input_tokens=150 + 30 * attempt, output_tokens=9)
            empty = rng.random() < 0.5
            with sdk.span(trace, name="web_search", type="tool", tool_name="web_search",
                          input={"query": query}) as search:
                search.set_output([] if empty else [{"title": f"All about {query}"}])
            if not empty:
                break
        retried += attempt > 0
        sdk.end_trace(trace, output=f"Here is what I know about {query}.")
    sdk.flush()
    assert 3 <= retried <= 11
    result = halo_nb.analyze(model="none")
    assert result.trace_count == 14 and result.detector_errors == []
    title = "tool retry loop after empty results"
    retry_clusters = result.clusters.filter(pl.col("title") == title)
    assert len(retry_clusters) == 1
    assert abs(retry_clusters["trace_count"][0] - retried) <= 1
