"""The Node.js research agent (examples/node_agent), traced with the OpenTelemetry JS SDK,
exports OTLP/HTTP protobuf to a real halo_nb Collector: spans arrive nested and typed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

AGENT_DIR = Path(__file__).resolve().parents[1] / "examples" / "node_agent"
NODE = shutil.which("node")

# The live tier: a real Node.js agent and the OpenTelemetry JS SDK, run as a process.
pytestmark = [pytest.mark.live, pytest.mark.skipif(NODE is None, reason="node is not installed")]


def run_node_agent(collector_url: str, *args: str, env: dict[str, str] | None = None) -> dict:
    if not (AGENT_DIR / "node_modules" / "@opentelemetry" / "sdk-trace-node").is_dir():
        pytest.fail("the Node agent's packages are missing: run "
                    "'npm ci --prefix examples/node_agent'")
    base_env = {"PATH": str(Path(NODE).parent), "HOME": str(AGENT_DIR)}
    done = subprocess.run([NODE, str(AGENT_DIR / "agent.js"), "--collector", collector_url,
                           "--json", *args], capture_output=True, text=True, timeout=240,
                          env={**base_env, **(env or {})})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def check_trace_shapes(spans: pl.DataFrame, runs: list[dict]) -> None:
    """Every run is one trace: an agent root, LLM and tool spans directly under it: an LLM
    call before each search the model asked for (none before one the tool wrapper issued
    itself), and the answering LLM call last."""
    assert spans.get_column("trace_id").n_unique() == len(runs)
    for run in runs:
        trace = spans.filter(pl.col("trace_id") == run["traceId"]).sort("start_ns")
        roots = trace.filter(pl.col("parent_span_id").is_null())
        assert roots.height == 1
        root = roots.row(0, named=True)
        assert (root["name"], root["kind"], root["input"]) == (
            "research_agent", "agent", run["question"])
        assert root["service"] == "node-research-agent"
        assert root["scope_name"] == "halo-nb-node-agent"
        children = trace.filter(pl.col("parent_span_id").is_not_null())
        assert set(children.get_column("parent_span_id")) == {root["span_id"]}
        kinds = children.get_column("kind").cast(pl.String).to_list()
        searches = run["searches"]
        expected = [kind for s in searches
                    for kind in (["tool"] if s["reformulated"] else ["llm", "tool"])]
        assert kinds == [*expected, "llm"]
        tools = children.filter(pl.col("kind") == "tool")
        assert tools.get_column("tool_name").to_list() == ["web_search"] * len(searches)
        assert [json.loads(a)["query"] for a in tools.get_column("tool_args")] == [
            s["query"] for s in searches]
        assert [json.loads(r)["results"] == [] for r in tools.get_column("tool_result")] == [
            s["empty"] for s in searches]
        llms = children.filter(pl.col("kind") == "llm")
        assert llms.get_column("model").null_count() == 0
        assert (llms.get_column("tokens_in") > 0).all()
        assert llms.get_column("finish_reason").to_list() == ["stop"] * llms.height
        # Children lie within the root (the JS SDK anchors each span's clock separately,
        # so under load their ends may disagree by a few milliseconds).
        slack = 20_000_000
        assert (children.get_column("start_ns") >= root["start_ns"] - slack).all()
        assert (children.get_column("end_ns") <= root["end_ns"] + slack).all()


def test_scripted_agent_spans_arrive_nested_and_typed(collector, memory_store) -> None:
    out = run_node_agent(collector.url, "--queries", "6")
    assert out["llm"] == "scripted"
    runs = out["runs"]
    spans = memory_store.spans()
    check_trace_shapes(spans, runs)
    kinds = {k.lower().removeprefix("span_kind_") for k in spans.get_column("otel_kind")}
    assert kinds == {"internal"}
    # The seeded search finds nothing for some questions: the baseline agent then repeats
    # the same query until it gives up, which is the retry loop halo_nb is built to find.
    looped = [r for r in runs if all(s["empty"] for s in r["searches"])]
    assert looped, "the seeded search should leave at least one of six questions empty"
    for run in looped:
        assert len(run["searches"]) == 3
        assert len({s["query"] for s in run["searches"]}) == 1


def test_reformulate_switch_broadens_repeated_queries(collector, memory_store) -> None:
    runs = run_node_agent(collector.url, "--queries", "6", "--reformulate")["runs"]
    check_trace_shapes(memory_store.spans(), runs)
    retried = [r for r in runs if len(r["searches"]) > 1]
    assert retried
    for run in retried:
        queries = [s["query"] for s in run["searches"]]
        assert len(set(queries)) == len(queries), queries
    reformulated = memory_store.spans().filter(
        pl.col("attributes").str.contains('"halo.metadata.reformulated":true'))
    assert reformulated.height == sum(len(r["searches"]) - 1 for r in retried)


def test_unreachable_collector_is_a_clear_error() -> None:
    from halo_nb.examples.research_agent.llm_server import free_loopback_port

    done = subprocess.run([NODE, str(AGENT_DIR / "agent.js"), "--collector",
                           f"http://127.0.0.1:{free_loopback_port()}", "--queries", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "ECONNREFUSED" in done.stderr


@pytest.mark.model
def test_agent_on_the_local_model(collector, memory_store, local_model_server) -> None:
    out = run_node_agent(collector.url, "--queries", "2", "--base-url",
                         local_model_server.base_url, "--model", "smollm2-135m-instruct")
    assert out["llm"] == "openai"
    check_trace_shapes(memory_store.spans(), out["runs"])
    llms = memory_store.spans().filter(pl.col("kind") == "llm")
    assert set(llms.get_column("model")) == {"smollm2-135m-instruct"}
    assert all(json.loads(s)[-1]["role"] in ("user", "tool")
               for s in llms.get_column("input"))
