"""The engine on real instrumentation libraries' spans (tests/fixtures/frameworks/,
recorded by scripts/record_frameworks.py from seven libraries run against a local mock
model): healthy runs give no finding of medium or above and no cluster; every injected
fault is caught by the right detector in every faulty run; the frame's columns are
filled for every library."""

from __future__ import annotations

import base64
import json

import polars as pl
import pytest
from google.protobuf.json_format import ParseDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otlp_factory import protobuf_body, span

from halo_nb.ingest.otlp import decode_native, decode_protobuf_reference
from halo_nb.rlm import analyze_frame
from halo_nb.rlm.model import checked_narrative
from halo_nb.rlm.prepare import prepare
from tests.frameworks.evaluate import FIXTURES, SETTINGS, evaluate, libraries, load
from tests.frameworks.scenarios import EXPECTED, HEALTHY, SCRIPTS

LIBRARIES = libraries()


def test_corpus_has_every_library_and_scenario():
    assert len(LIBRARIES) >= 7
    notes = json.loads((FIXTURES / "versions.json").read_text())
    for library in LIBRARIES:
        assert sorted(p.stem for p in (FIXTURES / library).glob("*.json")) == sorted(SCRIPTS)
        assert notes[library]["packages"], library


@pytest.mark.parametrize("library", LIBRARIES)
def test_healthy_runs_raise_nothing_and_faults_are_caught(library):
    report = evaluate(library)
    assert report.healthy_traces == 5 * len(HEALTHY)
    assert report.healthy_findings == [] and report.healthy_clusters == 0
    assert report.missed == {}
    assert all(runs == 5 and hit == runs for runs, hit in report.caught.values())
    assert set(report.caught) == set(EXPECTED)


@pytest.mark.parametrize("library", LIBRARIES)
def test_frame_columns_filled(library):
    frame = prepare(load(library)["healthy_4call"])
    for trace_id in frame["trace_id"].unique():
        trace = frame.filter(pl.col("trace_id") == trace_id)
        tools = trace.filter(pl.col("kind") == "tool").sort("start_ns")
        assert tools["tool_name"].to_list() == ["get_weather", "search_docs", "think"]
        weather, search = tools.row(0, named=True), tools.row(1, named=True)
        city = weather["tool_result"].strip('"').split(":")[0]  # Paris: light rain, 14 C
        assert city in weather["tool_args"] and f"museum {city}" in search["tool_args"]
        assert json.loads(search["tool_result"]) == [
            f"{city} museum: open 9:00-18:00, free on Sundays"]
        llms = trace.filter(pl.col("kind") == "llm")
        assert llms.height == 4
        assert llms["model"].str.starts_with("gpt-4o-mini").all()
        assert (llms["tokens_in"] > 0).all() and llms["output"].is_not_null().all()


def test_langgraph_tool_message_and_bare_argument_are_unwrapped():
    frame = prepare(load("langgraph")["empty_retries"])
    tools = frame.filter(pl.col("kind") == "tool")
    assert set(tools["tool_args"]) == {f"flux museum {c}" for c in
                                       ("Paris", "Tokyo", "Lima", "Oslo", "Cairo")}
    assert set(tools["tool_result"]) == {"[]"}


def test_traceloop_kwargs_are_the_tool_arguments():
    frame = prepare(load("traceloop")["healthy_4call"])
    args = frame.filter(pl.col("tool_name") == "get_weather")["tool_args"]
    assert all(set(json.loads(a)) == {"city"} for a in args)


def test_scratchpad_tool_is_learned_as_empty_by_design():
    frame = prepare(pl.concat([load("openai_agents")[s] for s in HEALTHY],
                              how="vertical_relaxed"))
    by_design = frame.filter(pl.col("empty_by_design"))["tool_name"].unique().to_list()
    assert by_design == ["think"]


def test_millisecond_start_times_keep_tool_before_next_llm_call():
    frame = prepare(load("node_openinference")["empty_retries"])
    for trace_id in frame["trace_id"].unique():
        kinds = frame.filter((pl.col("trace_id") == trace_id)
                             & pl.col("kind").is_in(["llm", "tool"]))["kind"].to_list()
        assert kinds == ["llm", "tool"] * 3 + ["llm"]


def test_recovered_tool_error_is_low_and_crashed_run_high():
    recovered = analyze_frame(load("openai_agents")["tool_raises"], SETTINGS).findings
    crashed = analyze_frame(load("pydantic_ai")["tool_raises"], SETTINGS).findings
    assert set(recovered.filter(pl.col("detector") == "error_status")["severity"]) == {"low"}
    assert set(crashed.filter(pl.col("detector") == "error_status")["severity"]) == {"high"}


@pytest.mark.parametrize("library", ["pydantic_ai", "langgraph"])
def test_fix_names_the_failure_not_the_detector(library):
    frames = load(library)
    corpus = pl.concat([frames[s] for s in (*HEALTHY, "tool_raises")], how="vertical_relaxed")
    result = analyze_frame(corpus, SETTINGS)
    (fix,) = result.hypotheses["suggested_fix"].to_list()
    assert "read_file is refused access (PermissionError" in fix
    assert "retrying cannot help" in fix and "backoff" not in fix


def test_fix_for_a_made_up_tool_lists_the_offered_tools():
    frames = load("openinference_openai")
    corpus = pl.concat([frames[s] for s in (*HEALTHY, "made_up_tool")], how="vertical_relaxed")
    (fix,) = analyze_frame(corpus, SETTINGS).hypotheses["suggested_fix"].to_list()
    assert "book_flight" in fix and "get_weather, read_file, search_docs, think" in fix


CLUSTER = {"trace_count": 5, "span_path": "travel_agent/tool:read_file"}


@pytest.mark.parametrize("text", [
    # the degenerate narrative from issue 16: repeated, self-contradicting, names nothing
    "The function is designed to handle permission errors, but it does not handle "
    "permission errors. The function is designed to handle permission errors, but it "
    "does not handle permission errors.",
    "read_file is designed to handle permission errors, but it does not handle "
    "permission errors.",
    "In 3 of 20 runs read_file is refused access.",  # the cluster has 5 of 20
    "The tool keeps failing; grant it access.",  # names neither tool nor span
])
def test_narratives_that_fail_the_checks_are_dropped(text):
    assert checked_narrative(text, CLUSTER, 20) is None


RETRY_CLUSTER = {"trace_count": 5, "span_path": "support-agent/tool:lookup_order",
                 "detector": "retry_loop"}


@pytest.mark.parametrize(("text", "kept"), [
    # seen in the insights view: SmolLM2 denying the retry loop it was asked to explain
    ("The code fails to retry a lookup_order call with a timeout that is not available, "
     "and instead returns a clear \"unavailable\" message to the agent.", False),
    ("lookup_order is not retried after a timeout.", False),
    ("lookup_order calls are retried blindly after timeouts. Do not retry them more than "
     "once.", True),
])
def test_a_narrative_must_not_deny_what_the_detector_saw(text, kept):
    assert (checked_narrative(text, RETRY_CLUSTER, 20) == text) is kept


def test_a_sound_narrative_is_kept():
    text = "In 5 of 20 runs read_file is refused access. Grant it access or stop asking."
    assert checked_narrative(text, CLUSTER, 20) == text


def _protobuf(request: dict) -> bytes:
    """An OTLP JSON request as protobuf (hex ids back to bytes)."""
    def ids(node):
        if isinstance(node, dict):
            return {k: (base64.b64encode(bytes.fromhex(v)).decode()
                        if k in ("traceId", "spanId", "parentSpanId") else ids(v))
                    for k, v in node.items()}
        return [ids(v) for v in node] if isinstance(node, list) else node
    return ParseDict(ids(request), ExportTraceServiceRequest()).SerializeToString()


@pytest.mark.parametrize("library", LIBRARIES)
def test_native_and_reference_decoders_agree_on_real_spans(library):
    for path in sorted((FIXTURES / library).glob("*.json")):
        body = _protobuf(json.loads(path.read_text()))
        native = decode_native(body)
        assert native is not None, path.name
        reference = decode_protobuf_reference(body)
        assert native.frame.equals(reference.frame), path.name
        tools = reference.frame.filter(pl.col("kind") == "tool")
        assert tools["tool_name"].null_count() == 0, path.name


@pytest.mark.parametrize("attrs, kind, model, tool", [
    ({"openinference.span.kind": "PROMPT"}, "chain", None, None),
    ({"openinference.span.kind": "DECISION"}, "chain", None, None),
    ({"openinference.span.kind": "LLM", "llm.request.model_name": "gpt-4.1"},
     "llm", "gpt-4.1", None),
    ({"openinference.span.kind": "LLM", "llm.response.model_name": "gpt-4.1-2025"},
     "llm", "gpt-4.1-2025", None),
    ({"openinference.span.kind": "TOOL", "input.value": '{"q": 1}'}, "tool", None, "lookup"),
])
def test_newest_openinference_names_in_both_decoders(attrs, kind, model, tool):
    body = protobuf_body([span("lookup", attrs=attrs)])
    native, reference = decode_native(body), decode_protobuf_reference(body)
    assert native is not None and native.frame.equals(reference.frame)
    row = reference.frame.row(0, named=True)
    assert (row["kind"], row["model"], row["tool_name"]) == (kind, model, tool)
