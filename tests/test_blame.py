"""Outcome and blame: which step broke a failed run, on traces recorded with the SDK and
with the OpenTelemetry SDK, and benchmarks/eval_blame.py end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import halo_nb
from halo_nb.config import Settings
from halo_nb.ingest.otel_spans import readable_spans_to_frame
from halo_nb.rlm import analyze_frame
from halo_nb.rlm.explain import explain_trace
from halo_nb.rlm.signals import FEATURES
from halo_nb.sdk import end_trace, span, start_trace

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "fixtures" / "who_and_when"
SETTINGS = Settings(model="none")


pytestmark = pytest.mark.usefixtures("sdk_in_process")


def outcomes(result: Any) -> dict[str, tuple[str, str]]:
    return {r["trace_id"]: (r["outcome"], r["outcome_source"])
            for r in result.assignments.to_dicts()}


def top(result: Any, trace_id: str) -> dict[str, Any]:
    rows = result.blame.filter(pl.col("trace_id") == trace_id).sort("rank").to_dicts()
    assert rows, f"no blame for {trace_id}"
    return rows[0]


def step(trace: Any, name: str, type: str, output: str, agent: str | None = None,
         error: str | None = None) -> str:
    attributes = {"gen_ai.agent.name": agent} if agent else None
    with span(trace, name=name, type=type, attributes=attributes) as s:
        s.set_output(output)
        if error:
            s.set_error(error)
    return s.span_id


def test_outcome_comes_from_the_caller_annotations_scores_status_and_evidence() -> None:
    annotated = start_trace("booking")
    step(annotated, "reply", "llm", "Booked.")
    annotated.annotate(outcome="failure")
    end_trace(annotated, output="Booked.")
    rewarded = start_trace("booking")
    rewarded.annotate(reward=0.0)
    end_trace(rewarded, output="Booked.")
    passed = start_trace("booking")
    passed.annotate(reward=1.0)
    end_trace(passed, output="Booked.")
    crashed = start_trace("booking")
    end_trace(crashed, error="ConnectionError: payments down")
    gave_up = start_trace("booking")
    end_trace(gave_up, output="I am unable to complete the booking.")
    fine = start_trace("booking")
    step(fine, "reply", "llm", "Booked flight 123.")
    end_trace(fine, output="Booked flight 123.")
    # A run recorded with plain OpenTelemetry: no status, no annotation, no evidence.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("run", attributes={
            "openinference.span.kind": "AGENT", "output.value": "done"}):
        pass
    plain = readable_spans_to_frame(exporter.get_finished_spans())
    spans = pl.concat([halo_nb.spans(), plain], how="diagonal_relaxed")

    result = analyze_frame(spans, SETTINGS)
    got = outcomes(result)
    assert got[annotated.trace_id] == ("failed", "annotation")
    assert got[rewarded.trace_id] == ("failed", "score")
    assert got[passed.trace_id] == ("succeeded", "score")
    assert got[crashed.trace_id] == ("failed", "status")
    assert got[gave_up.trace_id] == ("failed", "evidence")
    assert got[fine.trace_id] == ("succeeded", "status")
    assert got[plain["trace_id"][0]] == ("unknown", "none")
    failed = {t for t, (o, _) in got.items() if o == "failed"}
    assert set(result.blame["trace_id"].unique()) <= failed
    assert annotated.trace_id in set(result.blame["trace_id"])

    told = analyze_frame(spans, SETTINGS, outcomes={fine.trace_id: "failed",
                                                    annotated.trace_id: "success"})
    assert outcomes(told)[fine.trace_id] == ("failed", "user")
    assert outcomes(told)[annotated.trace_id] == ("succeeded", "user")
    assert told.assignments.filter(pl.col("trace_id") == fine.trace_id)["failed"].item()
    with pytest.raises(ValueError, match="escalated"):
        analyze_frame(spans, SETTINGS, outcomes={fine.trace_id: "escalated"})


def test_single_tool_calling_agent_blames_the_claim_that_ignored_the_failed_tool() -> None:
    t = start_trace("support-agent", input="Refund order 7731 please")
    step(t, "plan", "llm", "I will look up order 7731 and refund it.")
    step(t, "get_order", "tool", "", error="TimeoutError: order service timed out")
    answer = step(t, "answer", "llm",
                  "I have verified the refund was processed successfully. Assuming the total "
                  "was $89.50, you will see it in 3 days.")
    end_trace(t, output="Refund of $89.50 processed.")

    result = analyze_frame(halo_nb.spans(), SETTINGS, outcomes={t.trace_id: "failed"})
    blamed = top(result, t.trace_id)
    assert blamed["span_id"] == answer
    assert blamed["agent"] == "support-agent"
    assert {"claim_after_error", "invents", "ungrounded_answer"} <= set(blamed["signals"])
    assert any("89.50" in r for r in blamed["reasons"])
    ranks = result.blame.filter(pl.col("trace_id") == t.trace_id)["rank"].to_list()
    assert ranks == list(range(1, len(ranks) + 1))
    scores = result.blame.filter(pl.col("trace_id") == t.trace_id)["score"].to_list()
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1


def test_multi_agent_team_blames_the_worker_that_invented_the_result_it_handed_over() -> None:
    t = start_trace("team", input="What is the price of the blue kettle on shop.example?")
    step(t, "plan", "agent", "Plan: WebSurfer opens shop.example and reads the price.",
         agent="Orchestrator")
    step(t, "browse", "tool", "", agent="WebSurfer", error="HTTP 503 from shop.example")
    invented = step(t, "report", "agent",
                    "The page did not load, so I will use a placeholder price of 42 EUR.",
                    agent="WebSurfer")
    step(t, "check", "agent", "Verified: the price is 42 EUR. Final answer: 42 EUR.",
         agent="Orchestrator")
    end_trace(t, output="42 EUR")

    result = analyze_frame(halo_nb.spans(), SETTINGS, outcomes={t.trace_id: "failed"})
    blamed = top(result, t.trace_id)
    assert (blamed["span_id"], blamed["agent"]) == (invented, "WebSurfer")
    assert {"invents", "ungrounded_answer", "after_error"} <= set(blamed["signals"])
    text = explain_trace(result, t.trace_id)
    assert text.startswith(f"trace {t.trace_id}: FAILED (from user)")
    assert f"decisive step: report (span {invented}, agent WebSurfer" in text
    assert "placeholder" in text
    assert json.loads(result.to_json())["blame"][0]["trace_id"] == t.trace_id


def nested_run() -> tuple[str, str, str]:
    """root → planner agent → researcher agent → (search tool fails, a summary that
    claims success with made-up data). Returns (trace id, planner, summary span ids)."""
    t = start_trace("assistant", input="Summarise the Q3 revenue of ACME")
    with span(t, name="planner", type="agent") as planner:
        step(t, "outline", "llm", "Outline: find the filing, then summarise it.")
        with span(t, name="researcher", type="agent") as researcher:
            researcher.set_output("done")
            step(t, "search_filings", "tool", "", error="search backend unavailable")
            summary = step(t, "summarise", "llm",
                           "Successfully verified. Simulating the filing: revenue 512 million.")
        planner.set_output("Q3 revenue was 512 million.")
    step(t, "reply", "llm", "ACME's Q3 revenue was 512 million.")
    end_trace(t, output="ACME's Q3 revenue was 512 million.")
    return t.trace_id, planner.span_id, summary


def test_a_deeper_analysis_depth_finds_the_cause_a_shallower_one_cannot() -> None:
    trace_id, planner, summary = nested_run()
    spans = halo_nb.spans()
    told = {trace_id: "failed"}
    shallow = top(analyze_frame(spans, Settings(model="none", analysis_depth=1), told), trace_id)
    deep = top(analyze_frame(spans, Settings(model="none", analysis_depth=3), told), trace_id)
    assert (shallow["span_id"], shallow["layer"]) == (planner, 1)
    assert len(shallow["descent"]) == 1
    assert (deep["span_id"], deep["layer"]) == (summary, 3)
    assert deep["descent"][0] == planner and deep["descent"][-1] == summary
    assert len(deep["descent"]) == 3
    assert {"claim_after_error", "invents"} <= set(deep["signals"])


def test_eval_blame_runs_end_to_end_on_converted_labelled_runs(tmp_path: Path) -> None:
    out = tmp_path / "predictions.jsonl"
    script = ROOT / "benchmarks" / "eval_blame.py"
    run = subprocess.run(
        [sys.executable, str(script), "--traces", str(SAMPLE / "sample.otlp.jsonl"),
         "--labels", str(SAMPLE / "sample_labels.jsonl"), "--out", str(out)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=True)
    lines = run.stdout.splitlines()
    assert lines[0].startswith("6 traces, ")
    table = {line[:40].strip(): line[40:].split() for line in lines if "%" in line}
    assert set(table) == {"halo_nb blame", "last step", "step before first failing tool run",
                          "first decision"}
    assert all(len(cells) == 3 for cells in table.values())
    labels = [json.loads(line) for line in (SAMPLE / "sample_labels.jsonl").open()]
    predictions = [json.loads(line) for line in out.open()]
    assert sorted(p["trace_id"] for p in predictions) == sorted(g["trace_id"] for g in labels)
    spans = [json.loads(line) for line in (SAMPLE / "sample.otlp.jsonl").open()]
    span_ids = {s["spanId"] for r in spans for rs in r["resourceSpans"]
                for ss in rs["scopeSpans"] for s in ss["spans"]}
    assert all(p["span_id"] in span_ids and p["agent"] and isinstance(p["step_index"], int)
               for p in predictions)

    quiet = subprocess.run(
        [sys.executable, str(script), "--traces", str(SAMPLE / "sample.otlp.jsonl")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=True)
    assert "traces with a finding of medium or above: " in quiet.stdout


def test_orchestrator_hand_offs_and_a_stalled_ledger_point_into_the_delegated_reply() -> None:
    t = start_trace("magentic", input="Find the opening hours of the Lisbon city museum.")
    step(t, "thought", "agent", "Plan: ask WebSurfer to search the museum's site.",
         agent="Orchestrator")
    with span(t, name="instruct", type="agent",
              attributes={"gen_ai.agent.name": "Orchestrator"}) as instruct:
        instruct.set_output("(-> WebSurfer) Search for the Lisbon city museum opening hours.")
        reply = step(t, "reply", "agent", "I clicked the first result, a page about Lisbon "
                     "tram routes.", agent="WebSurfer")
    step(t, "ledger", "agent", '{"is_request_satisfied": {"reason": "no hours yet", "answer": '
         'false}, "is_progress_being_made": {"reason": "wrong page", "answer": false}}',
         agent="Orchestrator")
    end_trace(t, output="The museum's opening hours could not be found.")

    result = analyze_frame(halo_nb.spans(), SETTINGS)
    assert outcomes(result)[t.trace_id] == ("failed", "evidence")
    blamed = top(result, t.trace_id)
    assert (blamed["span_id"], blamed["agent"], blamed["layer"]) == (reply, "WebSurfer", 2)
    assert blamed["descent"] == [instruct.span_id, reply]
    upper = result.blame.filter((pl.col("trace_id") == t.trace_id)
                                & (pl.col("span_id") == instruct.span_id))
    assert upper.height == 1  # once: its own step competed with the reply it received


def test_fit_blame_is_reproducible_and_writes_weights_for_every_feature(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "fit_blame.py"
    outputs = []
    for name in ("first.json", "second.json"):
        run = subprocess.run(
            [sys.executable, str(script), "--traces", str(SAMPLE / "sample.otlp.jsonl"),
             "--labels", str(SAMPLE / "sample_labels.jsonl"), "--folds", "3",
             "--repeats", "2", "--out", str(tmp_path / name)],
            capture_output=True, text=True, timeout=120, cwd=tmp_path, check=True)
        assert "6 labelled traces" in run.stdout and "over 2 shuffled fold assignments" in (
            run.stdout)
        outputs.append((tmp_path / name).read_text())
    assert outputs[0] == outputs[1]  # deterministic: same data, same coefficients
    fitted = json.loads(outputs[0])
    assert fitted["features"] == list(FEATURES)
    assert all(math.isfinite(w) for w in fitted["weights"])
    assert fitted["cross_validated"]["folds"] == 3
    assert fitted["cross_validated_shuffled"]["repeats"] == 2
    assert 0 <= fitted["cross_validated_shuffled"]["step_mean"] <= 1
