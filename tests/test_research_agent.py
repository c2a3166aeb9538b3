"""The sample research agent (examples/research_agent): the simulated search, the reply
protocol, and real runs against the bundled local model through llama.cpp's
OpenAI-compatible server, traced with the halo_nb SDK and with the OpenInference
OpenAI instrumentor."""

from __future__ import annotations

import json

import polars as pl
import pytest

import halo_nb

# The sample agent needs halo_nb[examples]; every test here runs it on the local model.
pytest.importorskip("openai", reason="the sample agent needs halo_nb[examples]")
pytestmark = pytest.mark.model

from halo_nb.config import load_settings  # noqa: E402
from halo_nb.examples.research_agent import (  # noqa: E402
    QUERIES,
    Endpoint,
    SimulatedSearch,
    broaden,
    endpoint_from_env,
    run_batch,
)
from halo_nb.examples.research_agent.protocol import Reply, grammar, parse_reply  # noqa: E402
from halo_nb.examples.research_agent.search import query_terms  # noqa: E402
from halo_nb.rlm import analyze_frame  # noqa: E402

BATCH = list(QUERIES[:4])


# ---- the simulated search and the reply protocol (no model) --------------------------------


def test_search_is_seeded_reproducible_and_empty_about_half_the_time() -> None:
    search = SimulatedSearch(seed=7)
    queries = [f"topic {n} facts" for n in range(400)]
    empty = sum(1 for q in queries if not search.search(q))
    assert 0.4 < empty / len(queries) < 0.6
    assert [len(search.search(q)) for q in queries] == [
        len(SimulatedSearch(seed=7).search(q)) for q in queries]
    assert [len(search.search(q)) for q in queries[:50]] != [
        len(SimulatedSearch(seed=8).search(q)) for q in queries[:50]]


def test_near_identical_queries_get_the_same_answer_and_reformulations_a_new_draw() -> None:
    search = SimulatedSearch(seed=7)
    empty = next(q for q in (f"{w} history" for w in QUERIES) if not search.search(q))
    assert search.search(empty.upper() + "?") == []
    assert search.search("the " + empty) == []
    tried = [empty]
    for _ in range(3):
        broader = broaden(tried[-1], tried)
        assert set(query_terms(broader)) != set(query_terms(tried[-1]))
        tried.append(broader)
    assert len({" ".join(sorted(query_terms(q))) for q in tried}) == len(tried)


def test_search_rejects_a_bad_empty_rate() -> None:
    with pytest.raises(ValueError, match="empty_rate"):
        SimulatedSearch(empty_rate=1.5)


def test_grammar_allows_only_the_expected_reply() -> None:
    assert grammar("required").startswith('root ::= "SEARCH: "')
    assert grammar("none").startswith('root ::= "ANSWER: "')
    assert parse_reply("SEARCH: neptune moons") == Reply("search", "neptune moons")
    assert parse_reply("ANSWER: 16 moons\nper NASA") == Reply("answer", "16 moons\nper NASA")
    assert parse_reply("sixteen") == Reply("answer", "sixteen")


def test_endpoint_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert endpoint_from_env() is None
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv("OPENAI_MODEL", "qwen2.5:0.5b")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    endpoint = endpoint_from_env()
    assert (endpoint.base_url, endpoint.model, endpoint.protocol) == (
        "http://127.0.0.1:11434/v1", "qwen2.5:0.5b", "tools")
    monkeypatch.setenv("HALO_AGENT_PROTOCOL", "smoke-signals")
    with pytest.raises(ValueError, match="HALO_AGENT_PROTOCOL"):
        endpoint_from_env()


# ---- real runs on the local model -----------------------------------------------------------


def _children(spans: pl.DataFrame, trace_id: str) -> tuple[dict, pl.DataFrame]:
    trace = spans.filter(pl.col("trace_id") == trace_id).sort("start_ns")
    roots = trace.filter(pl.col("parent_span_id").is_null())
    assert roots.height == 1, "one root per trace"
    root = roots.row(0, named=True)
    children = trace.filter(pl.col("parent_span_id").is_not_null())
    assert set(children.get_column("parent_span_id")) == {root["span_id"]}
    return root, children


def check_runs(spans: pl.DataFrame, report) -> None:
    """Each run is one trace: the agent root, and directly under it an LLM call before each
    search the model asked for (none before one the tool wrapper issued itself), the tool
    spans carrying exactly the searches the agent ran, and the answering LLM call last."""
    assert spans.get_column("trace_id").n_unique() == len(report.runs)
    for run in report.runs:
        assert run.error is None, run.error
        assert run.answer
        root, children = _children(spans, run.trace_id)
        assert (root["name"], root["kind"], root["input"], root["output"]) == (
            "research_agent", "agent", run.question, run.answer)
        expected = [kind for s in run.searches
                    for kind in (["tool"] if s.reformulated else ["llm", "tool"])]
        assert children.get_column("kind").cast(pl.String).to_list() == [*expected, "llm"]
        tools = children.filter(pl.col("kind") == "tool")
        assert [json.loads(a)["query"] for a in tools.get_column("tool_args")] == [
            s.query for s in run.searches]
        assert [len(json.loads(r)["results"]) for r in tools.get_column("tool_result")] == [
            s.result_count for s in run.searches]
        llms = children.filter(pl.col("kind") == "llm")
        assert set(llms.get_column("model")) == {"smollm2-135m-instruct"}
        assert (llms.get_column("tokens_in") > 0).all()
        assert (llms.get_column("tokens_out") > 0).all()
        # At most three searches, stopping at the first that finds something.
        counts = [s.result_count for s in run.searches]
        assert 1 <= len(counts) <= 3
        assert all(c == 0 for c in counts[:-1])
        assert counts[-1] > 0 or len(counts) == 3


@pytest.mark.model
def test_baseline_agent_on_the_local_model_retries_near_identical_queries(
        agent_batches) -> None:
    batch = agent_batches["baseline"]
    report, spans = batch.report, batch.spans
    check_runs(spans, report)
    assert set(spans.get_column("service")) == {"agent"}
    llms = spans.filter(pl.col("kind") == "llm")
    assert set(llms.get_column("finish_reason")) == {"stop"}
    assert all(json.loads(m)[0]["role"] == "system" for m in llms.get_column("input"))
    assert not any(s.reformulated for r in report.runs for s in r.searches)
    looped = [r for r in report.runs if len(r.searches) == 3 and not r.found_results]
    assert len(looped) >= 2, [r.searches for r in report.runs]
    # The model was not told to reformulate: it repeats its query, and halo_nb's
    # analysis finds the retry loop as a cluster across traces.
    result = analyze_frame(spans, load_settings().replace(model="none"))
    retries = result.findings.filter(pl.col("detector") == "retry_loop")
    assert set(retries.get_column("trace_id")) == {r.trace_id for r in looped}
    assert "retry_loop" in result.clusters.get_column("detector").to_list()


@pytest.mark.model
def test_reformulate_switch_makes_every_retry_a_new_query(agent_batches) -> None:
    batch = agent_batches["fixed"]
    report, spans = batch.report, batch.spans
    check_runs(spans, report)
    for run in report.runs:
        keys = [" ".join(sorted(query_terms(s.query))) for s in run.searches]
        assert len(set(keys)) == len(keys), keys
        assert all(s.reformulated for s in run.searches[1:])
    assert report.unanswered < agent_batches["baseline"].report.unanswered
    prompts = spans.filter(pl.col("kind") == "llm").get_column("input")
    assert all("do not repeat it" in json.loads(p)[0]["content"] for p in prompts)
    result = analyze_frame(spans, load_settings().replace(model="none"))
    assert result.findings.filter(pl.col("detector") == "retry_loop").is_empty()


@pytest.mark.model
def test_openinference_variant_exports_to_the_collector(halo_runtime,
                                                        local_model_server) -> None:
    collector = halo_nb.serve()
    report = run_batch(BATCH[:2], variant="openinference", endpoint=local_model_server.endpoint)
    spans = halo_nb.spans()
    assert collector.counts.spans_accepted == spans.height
    check_runs(spans, report)
    assert set(spans.get_column("service")) == {"research-agent-openinference"}
    llms = spans.filter(pl.col("kind") == "llm")
    assert set(llms.get_column("scope_name")) == {"openinference.instrumentation.openai"}
    attrs = [json.loads(a) for a in llms.get_column("attributes")]
    assert all(json.loads(a["llm.tools.0.tool.json_schema"])["function"]["name"] == "web_search"
               for a in attrs)
    assert all(json.loads(a["llm.invocation_parameters"])["temperature"] == 0 for a in attrs)


@pytest.mark.model
def test_openai_base_url_selects_the_endpoint(halo_runtime, local_model_server,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", local_model_server.base_url)
    monkeypatch.setenv("OPENAI_MODEL", "smollm2-135m-instruct")
    monkeypatch.setenv("HALO_AGENT_PROTOCOL", "grammar")
    report = run_batch(BATCH[:1])
    assert report.model == "smollm2-135m-instruct"
    check_runs(halo_nb.spans(), report)


@pytest.mark.model
def test_native_tool_calls_protocol(halo_runtime, local_model_server) -> None:
    """protocol="tools": the tool is declared natively and forced by name; llama.cpp's
    server then constrains the arguments to the tool's JSON schema and returns real
    tool_calls, which the agent runs."""
    endpoint = Endpoint(local_model_server.base_url, "not-needed", "smollm2-135m-instruct",
                        "tools")
    report = run_batch(BATCH[:2], endpoint=endpoint)
    spans = halo_nb.spans()
    check_runs(spans, report)
    searching = spans.filter((pl.col("kind") == "llm")
                             & pl.col("output").str.starts_with("[")).get_column("output")
    calls = [json.loads(output)[0] for output in searching]
    assert len(calls) == report.searches
    assert {call["function"]["name"] for call in calls} == {"web_search"}
    assert "SEARCH:" not in json.loads(
        spans.filter(pl.col("kind") == "llm").get_column("input")[0])[0]["content"]
