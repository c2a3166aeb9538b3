"""The Python trace SDK: spans round-trip into halo_nb.spans() with the documented columns."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import halo_nb
from halo_nb import sdk
from halo_nb.ingest.otel_spans import readable_spans_to_frame
from halo_nb.ingest.otlp import decode_protobuf
from halo_nb.ingest.server import Collector
from halo_nb.sdk import annotate, end_trace, span, start_trace
from halo_nb.storage.store import SpanStore

pytestmark = pytest.mark.usefixtures("sdk_in_process")


def by_name(frame: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in frame.iter_rows(named=True)}


def test_trace_round_trips_with_the_documented_columns() -> None:
    trace = start_trace("support-bot", input={"question": "refund?"}, metadata={"user": "u-1"},
                        session_id="s-9", tags=["beta"])
    with span(trace, name="plan", type="llm", model="gpt-4o-mini",
              input=[{"role": "user", "content": "refund?"}]) as llm:
        llm.record_tokens(input_tokens=812, output_tokens=64).set_finish_reason("stop")
        llm.set_output("look up the order")
    with span(trace, name="lookup_order", type="tool", input={"order_id": 42}) as tool:
        tool.set_output({"status": "shipped"})
    with span(trace, name="docs", type="retriever") as retriever:
        retriever.set_input("refund policy").set_output(["doc-1", "doc-2"])
    end_trace(trace, output="Your order has shipped.")

    frame = halo_nb.spans()
    assert frame.height == 4
    assert frame["trace_id"].unique().to_list() == [trace.trace_id]
    rows = by_name(frame)
    root = rows["support-bot"]
    assert root["parent_span_id"] is None
    assert root["span_id"] == trace.root.span_id
    assert {rows[n]["parent_span_id"] for n in ("plan", "lookup_order", "docs")} == {
        root["span_id"]}
    assert {n: r["kind"] for n, r in rows.items()} == {
        "support-bot": "agent", "plan": "llm", "lookup_order": "tool", "docs": "retriever"}
    assert root["input"] == '{"question":"refund?"}'
    assert root["output"] == "Your order has shipped."
    assert all(r["status"] == "ok" and r["end_ns"] >= r["start_ns"] for r in rows.values())

    plan = rows["plan"]
    assert (plan["model"], plan["tokens_in"], plan["tokens_out"], plan["tokens_total"]) == (
        "gpt-4o-mini", 812, 64, 876)
    assert plan["finish_reason"] == "stop"
    assert json.loads(plan["input"]) == [{"role": "user", "content": "refund?"}]
    assert plan["output"] == "look up the order"
    assert plan["otel_kind"] == "client"

    tool_row = rows["lookup_order"]
    assert tool_row["tool_name"] == "lookup_order"
    assert json.loads(tool_row["tool_args"]) == {"order_id": 42}
    assert json.loads(tool_row["tool_result"]) == {"status": "shipped"}
    assert rows["docs"]["output"] == '["doc-1","doc-2"]'
    assert root["service"] == "agent"
    assert root["scope_name"] == "halo_nb.sdk"

    table = halo_nb.trace_table()
    expected = {"trace_id": trace.trace_id, "name": "support-bot", "span_count": 4,
                "llm_count": 1, "tool_count": 1, "tokens_total": 876, "status": "ok",
                "ended": True}
    assert table.select(list(expected)).row(0, named=True) == expected


def test_spans_carry_openinference_and_genai_attributes() -> None:
    with start_trace("run") as trace:
        with trace.span("chat", type="llm", model="m-1") as llm:
            llm.record_tokens(input_tokens=3, output_tokens=4)
            llm.set_input([{"role": "system", "content": "be brief"},
                           {"role": "user", "content": "hi"}])
            llm.set_output({"role": "assistant", "content": "hello"})
        with trace.span("search", type="tool", input={"q": "x"}) as tool:
            tool.set_output("found")
    rows = by_name(halo_nb.spans())
    chat = json.loads(rows["chat"]["attributes"])
    assert chat["openinference.span.kind"] == "LLM"
    assert chat["gen_ai.operation.name"] == "chat"
    assert chat["halo.span.type"] == "llm"
    assert chat["llm.model_name"] == chat["gen_ai.request.model"] == "m-1"
    assert (chat["gen_ai.usage.input_tokens"], chat["gen_ai.usage.output_tokens"]) == (3, 4)
    assert (chat["llm.token_count.prompt"], chat["llm.token_count.completion"],
            chat["llm.token_count.total"]) == (3, 4, 7)
    assert (chat["llm.input_messages.0.message.role"], chat["llm.input_messages.1.message.content"],
            chat["llm.output_messages.0.message.content"]) == ("system", "hi", "hello")
    search = json.loads(rows["search"]["attributes"])
    assert search["openinference.span.kind"] == "TOOL"
    assert search["gen_ai.operation.name"] == "execute_tool"
    assert search["tool.name"] == search["gen_ai.tool.name"] == "search"
    assert search["gen_ai.tool.call.arguments"] == search["input.value"] == '{"q":"x"}'
    assert search["gen_ai.tool.call.result"] == search["output.value"] == "found"
    assert search["input.mime_type"] == "application/json"
    root = json.loads(rows["run"]["attributes"])
    assert root["openinference.span.kind"] == "AGENT"
    assert root["gen_ai.operation.name"] == "invoke_agent"
    assert root["halo.trace.ended"] is True


def test_metadata_is_kept_per_key_and_as_one_object() -> None:
    trace = start_trace("run", metadata={"experiment": "A", "retries": 2})
    with span(trace, name="step", metadata={"tenant": {"id": 7}}) as step:
        step.set_metadata(region="eu")
    end_trace(trace)
    rows = by_name(halo_nb.spans())
    root = json.loads(rows["run"]["attributes"])
    assert root["halo.metadata.experiment"] == "A" and root["halo.metadata.retries"] == 2
    assert json.loads(root["metadata"]) == {"experiment": "A", "retries": 2}
    step_attrs = json.loads(rows["step"]["attributes"])
    assert json.loads(step_attrs["halo.metadata.tenant"]) == {"id": 7}
    assert json.loads(step_attrs["metadata"]) == {"tenant": {"id": 7}, "region": "eu"}
    assert rows["step"]["kind"] == "chain"


def test_exception_inside_a_span_is_recorded_and_reraised() -> None:
    trace = start_trace("run")
    with pytest.raises(TimeoutError, match="search backend timed out"):
        with span(trace, name="search", type="tool"):
            raise TimeoutError("search backend timed out")
    end_trace(trace)
    rows = by_name(halo_nb.spans())
    failed = rows["search"]
    assert failed["status"] == "error"
    assert failed["status_message"] == "TimeoutError: search backend timed out"
    events = json.loads(failed["events"])
    assert [e["name"] for e in events] == ["exception"]
    assert events[0]["attributes"]["exception.type"] == "TimeoutError"
    assert events[0]["attributes"]["exception.message"] == "search backend timed out"
    assert "Traceback" in events[0]["attributes"]["exception.stacktrace"]
    assert rows["run"]["status"] == "ok"
    assert halo_nb.trace_table()["status"].to_list() == ["error"]


def test_end_trace_with_an_error_message_marks_the_root_failed() -> None:
    trace = start_trace("run")
    end_trace(trace, error="gave up after 3 retries")
    root = halo_nb.spans().row(0, named=True)
    assert (root["status"], root["status_message"]) == ("error", "gave up after 3 retries")


def test_end_trace_with_an_exception_records_it() -> None:
    trace = start_trace("run")
    end_trace(trace, error=ValueError("bad plan"), output="partial")
    root = halo_nb.spans().row(0, named=True)
    assert (root["status"], root["status_message"], root["output"]) == (
        "error", "ValueError: bad plan", "partial")
    assert json.loads(root["events"])[0]["attributes"]["exception.type"] == "ValueError"


def test_trace_as_context_manager_fails_on_an_exception() -> None:
    with pytest.raises(RuntimeError):
        with start_trace("run") as trace:
            with span(name="inner"):
                pass
            raise RuntimeError("agent crashed")
    assert trace.ended
    rows = by_name(halo_nb.spans())
    assert rows["run"]["status"] == "error"
    assert rows["run"]["status_message"] == "RuntimeError: agent crashed"
    assert rows["inner"]["parent_span_id"] == rows["run"]["span_id"]


def test_annotations_are_events_and_attributes() -> None:
    trace = start_trace("run")
    with span(trace, name="answer", type="llm"):
        annotate(correct=False, score=0.25, reviewer="ana", labels=["tone", "facts"],
                 detail={"why": "made up a date"})
    trace.annotate(outcome="escalated")
    end_trace(trace)
    rows = by_name(halo_nb.spans())
    answer = rows["answer"]
    events = json.loads(answer["events"])
    assert [e["name"] for e in events] == ["halo.annotation"]
    values = events[0]["attributes"]
    assert values["correct"] is False and values["score"] == 0.25 and values["reviewer"] == "ana"
    assert values["labels"] == ["tone", "facts"]
    assert json.loads(values["detail"]) == {"why": "made up a date"}
    attributes = json.loads(answer["attributes"])
    assert attributes["halo.annotation.score"] == 0.25
    assert attributes["halo.annotation.labels"] == ["tone", "facts"]
    root_events = json.loads(rows["run"]["events"])
    assert root_events[0]["attributes"] == {"outcome": "escalated"}


def test_annotate_outside_a_span_warns_and_records_nothing() -> None:
    with pytest.warns(UserWarning, match="no current span"):
        annotate(score=1)
    assert halo_nb.spans().height == 0


def test_annotate_after_the_last_trace_ended_warns() -> None:
    trace = start_trace("run")
    end_trace(trace)
    with pytest.warns(UserWarning, match="no current span"):
        annotate(score=1)
    assert json.loads(halo_nb.spans()["events"][0]) == []


def test_span_without_trace_nests_under_the_current_span() -> None:
    trace = start_trace("run")
    with span(name="agent", type="agent") as agent:
        with span(name="llm", type="llm") as llm:
            assert sdk.current_span().span_id == llm.span_id
        with span(trace, name="explicit", type="tool"):  # same trace: nests under "agent" too
            pass
    with span(name="after"):
        pass
    end_trace(trace)
    rows = by_name(halo_nb.spans())
    assert rows["llm"]["parent_span_id"] == agent.span_id
    assert rows["explicit"]["parent_span_id"] == agent.span_id
    assert rows["agent"]["parent_span_id"] == trace.root.span_id
    assert rows["after"]["parent_span_id"] == trace.root.span_id
    assert halo_nb.spans()["trace_id"].n_unique() == 1


def test_span_without_any_trace_starts_its_own() -> None:
    with span("standalone", type="tool") as handle:
        pass
    row = halo_nb.spans().row(0, named=True)
    assert row["parent_span_id"] is None and row["trace_id"] == handle.trace_id
    assert row["name"] == "standalone" and row["tool_name"] == "standalone"


def test_explicit_trace_wins_over_an_unrelated_current_span() -> None:
    first = start_trace("first")
    second = start_trace("second")  # now current
    with span(first, name="for-first"):
        pass
    end_trace(second)
    end_trace(first)
    rows = by_name(halo_nb.spans())
    assert rows["for-first"]["trace_id"] == first.trace_id
    assert rows["for-first"]["parent_span_id"] == first.root.span_id


def test_a_thread_without_context_joins_the_only_open_trace() -> None:
    trace = start_trace("run")

    def work() -> None:
        with span(name="in-thread", type="tool"):
            pass

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    end_trace()
    rows = by_name(halo_nb.spans())
    assert rows["in-thread"]["parent_span_id"] == trace.root.span_id


def test_with_two_open_traces_a_context_free_span_joins_neither() -> None:
    first, second = start_trace("first"), start_trace("second")

    def work() -> None:
        with span(name="orphan"):
            pass

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    end_trace(second)
    end_trace(first)
    orphan = by_name(halo_nb.spans())["orphan"]
    assert orphan["parent_span_id"] is None
    assert orphan["trace_id"] not in (first.trace_id, second.trace_id)


class Planner:
    @span(type="llm", model="tiny-1")
    def plan(self, goal: str, *steps: str, **options: Any) -> dict[str, Any]:
        return {"goal": goal, "steps": list(steps), "options": options}


def test_decorator_on_a_sync_function_records_arguments_and_result() -> None:
    @span(type="tool")
    def get_weather(city: str, unit: str = "C") -> dict[str, Any]:
        return {"city": city, "temp": 21, "unit": unit}

    trace = start_trace("run")
    assert get_weather("Oslo", unit="F") == {"city": "Oslo", "temp": 21, "unit": "F"}
    assert get_weather.__name__ == "get_weather"
    Planner().plan("ship", "pack", "send", fast=True)
    end_trace(trace)
    rows = by_name(halo_nb.spans())
    weather = rows["test_decorator_on_a_sync_function_records_arguments_and_result.<locals>."
                   "get_weather"]
    assert weather["kind"] == "tool"
    assert json.loads(weather["tool_args"]) == {"city": "Oslo", "unit": "F"}
    assert json.loads(weather["tool_result"]) == {"city": "Oslo", "temp": 21, "unit": "F"}
    assert weather["parent_span_id"] == trace.root.span_id
    plan = rows["Planner.plan"]
    assert plan["model"] == "tiny-1"
    assert json.loads(plan["input"]) == {"goal": "ship", "steps": ["pack", "send"], "fast": True}


def test_bare_decorator_and_capture_switches() -> None:
    @span
    def step(x: int) -> int:
        return x + 1

    @span(name="secret", type="llm", capture_input=False, capture_output=False)
    def private(prompt: str) -> str:
        return "classified"

    with start_trace("run"):
        step(1)
        private("my password")
    rows = by_name(halo_nb.spans())
    step_row = next(r for n, r in rows.items() if n.endswith("step"))
    assert (step_row["kind"], step_row["input"], step_row["output"]) == ("chain", '{"x":1}', "2")
    assert rows["secret"]["input"] is None and rows["secret"]["output"] is None


def test_decorated_function_that_raises() -> None:
    @span(name="flaky", type="tool")
    def flaky() -> None:
        raise KeyError("missing")

    with start_trace("run"):
        with pytest.raises(KeyError):
            flaky()
    flaky_row = by_name(halo_nb.spans())["flaky"]
    assert flaky_row["status"] == "error"
    assert flaky_row["status_message"] == "KeyError: 'missing'"


def test_decorator_on_async_functions_keeps_concurrent_tasks_apart() -> None:
    @span(type="llm")
    async def call_model(prompt: str) -> str:
        await asyncio.sleep(0.01)
        return prompt.upper()

    @span(type="agent")
    async def agent(name: str) -> str:
        first = await call_model(f"{name}-1")
        second = await call_model(f"{name}-2")
        return first + second

    async def main() -> list[str]:
        return list(await asyncio.gather(agent("a"), agent("b")))

    with start_trace("run") as trace:
        assert asyncio.run(main()) == ["A-1A-2", "B-1B-2"]
    frame = halo_nb.spans()
    agents = frame.filter(pl.col("kind") == "agent", pl.col("name") != "run")
    assert agents.height == 2
    assert set(agents["parent_span_id"]) == {trace.root.span_id}
    for row in agents.iter_rows(named=True):
        name = json.loads(row["input"])["name"]
        calls = frame.filter(pl.col("parent_span_id") == row["span_id"])
        assert sorted(json.loads(c)["prompt"] for c in calls["input"]) == [
            f"{name}-1", f"{name}-2"]
        assert row["output"] == f"{name.upper()}-1{name.upper()}-2"


def test_async_with_span() -> None:
    async def main() -> None:
        async with span(name="async-block", type="retriever") as handle:
            await asyncio.sleep(0)
            handle.set_output(["d1"])
            with span(name="child"):
                pass

    with start_trace("run"):
        asyncio.run(main())
    rows = by_name(halo_nb.spans())
    assert rows["async-block"]["output"] == '["d1"]'
    assert rows["child"]["parent_span_id"] == rows["async-block"]["span_id"]


def test_decorated_generator_spans_the_whole_iteration() -> None:
    @span(name="stream", type="llm")
    def stream(n: int) -> Iterator[str]:
        for i in range(n):
            with span(name=f"chunk-{i}"):
                pass
            yield f"tok{i} "

    with start_trace("run"):
        chunks = []
        for chunk in stream(3):
            chunks.append(chunk)
            with span(name=f"consumer-{len(chunks)}"):  # the caller's spans are not inside
                pass
    rows = by_name(halo_nb.spans())
    assert chunks == ["tok0 ", "tok1 ", "tok2 "]
    assert rows["stream"]["output"] == "tok0 tok1 tok2 "
    assert json.loads(rows["stream"]["input"]) == {"n": 3}
    assert {rows[f"chunk-{i}"]["parent_span_id"] for i in range(3)} == {rows["stream"]["span_id"]}
    assert rows["consumer-1"]["parent_span_id"] == rows["run"]["span_id"]
    assert rows["stream"]["end_ns"] >= rows["chunk-2"]["end_ns"]


def test_generator_closed_early_ends_its_span_without_error() -> None:
    @span(name="numbers")
    def numbers() -> Iterator[int]:
        yield from range(100)

    with start_trace("run"):
        for value in numbers():
            if value == 2:
                break
    row = by_name(halo_nb.spans())["numbers"]
    assert row["status"] == "ok" and json.loads(row["output"]) == [0, 1, 2]


def test_decorated_async_generator() -> None:
    @span(name="astream", type="llm")
    async def astream(words: list[str]) -> Any:
        for word in words:
            await asyncio.sleep(0)
            yield word

    @span(name="broken-stream")
    async def broken() -> Any:
        yield 1
        raise ConnectionError("stream dropped")

    async def main() -> list[str]:
        out = [w async for w in astream(["a", "b"])]
        with pytest.raises(ConnectionError):
            async for _ in broken():
                pass
        return out

    with start_trace("run"):
        assert asyncio.run(main()) == ["a", "b"]
    rows = by_name(halo_nb.spans())
    assert rows["astream"]["output"] == "ab"
    assert rows["broken-stream"]["status"] == "error"
    assert rows["broken-stream"]["status_message"] == "ConnectionError: stream dropped"


@dataclasses.dataclass
class Order:
    id: int
    items: list[str]


def test_awkward_values_are_recorded_without_raising() -> None:
    cyclic: dict[str, Any] = {"name": "loop"}
    cyclic["self"] = cyclic
    value = {"order": Order(1, ["pen"]), (1, 2): "tuple key", "raw": b"\x00\xff",
             "nan": float("nan"), "set": {3}, "cycle": cyclic, "obj": object.__new__(Planner),
             "huge": 2**80}
    with start_trace("run", input=value) as trace:
        trace.root.set_attributes(big_int=2**70, nothing=None, nested={"a": [1, {"b": 2}]})
    row = halo_nb.spans().row(0, named=True)
    recorded = json.loads(row["input"])
    assert recorded["order"] == {"id": 1, "items": ["pen"]}
    assert recorded["[1,2]"] == "tuple key"
    assert recorded["raw"].startswith("base64:")
    assert recorded["nan"] == "nan" and recorded["set"] == [3] and recorded["huge"] == 2**80
    assert recorded["cycle"] == {"name": "loop", "self": "<cycle>"}
    assert recorded["obj"].startswith("<test_sdk.Planner object")
    attributes = json.loads(row["attributes"])
    assert attributes["big_int"] == str(2**70)
    assert "nothing" not in attributes
    assert json.loads(attributes["nested"]) == {"a": [1, {"b": 2}]}


def test_bad_arguments_give_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown span type 'llama'.*llm"):
        span(name="x", type="llama")
    with pytest.raises(TypeError, match="Trace from start_trace"):
        span(42)
    with pytest.raises(ValueError, match="no open trace"):
        end_trace()
    trace = start_trace("run")
    end_trace(trace)
    with pytest.warns(UserWarning, match="already ended"):
        end_trace(trace)


def test_spans_are_queryable_when_end_trace_returns_and_persist(halo_runtime: Path) -> None:
    trace = start_trace("run")
    for i in range(20):
        with span(trace, name=f"step-{i}", type="tool"):
            pass
    end_trace(trace)
    assert halo_nb.spans(trace.trace_id).height == 21
    halo_nb.store().flush()
    from halo_nb import runtime

    runtime.reset()
    halo_nb.configure(storage_path=halo_runtime, port=0)
    assert halo_nb.spans(trace.trace_id).height == 21


def test_spans_from_many_threads_are_all_stored() -> None:
    def run(n: int) -> None:
        with start_trace(f"agent-{n}") as trace:
            for i in range(25):
                with span(trace, name=f"s{i}", type="llm") as s:
                    s.record_tokens(input_tokens=i, output_tokens=1)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    table = halo_nb.trace_table()
    assert table.height == 8
    assert table["span_count"].to_list() == [26] * 8
    assert table["tokens_total"].to_list() == [sum(range(25)) + 25] * 8


def test_sdk_objects_and_otlp_bytes_decode_to_the_same_frame() -> None:
    """The in-process path and the OTLP path (encode → protobuf → decoder) agree."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("agent-lib", "2.0")
    with tracer.start_as_current_span("root", attributes={"openinference.span.kind": "AGENT",
                                                          "tags": ["a", "b"]}):
        with tracer.start_as_current_span("call", kind=otel_trace.SpanKind.CLIENT,
                                          attributes={"gen_ai.operation.name": "chat",
                                                      "gen_ai.usage.input_tokens": 5,
                                                      "temperature": 0.2}) as child:
            child.add_event("halo.annotation", {"score": 1.5})
            child.record_exception(ValueError("boom"))
            child.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, "boom"))
        handoff = otel_trace.Link(child.get_span_context(), {"reason": "retry of call"})
        with tracer.start_as_current_span("retry", links=[handoff]):
            pass
    finished = exporter.get_finished_spans()
    direct = readable_spans_to_frame(finished)
    wire = decode_protobuf(encode_spans(finished).SerializeToString()).frame
    key = ["span_id"]
    assert direct.sort(key).equals(wire.select(direct.columns).sort(key))
    assert set(direct["kind"]) == {"agent", "llm", "unknown"}
    retry = direct.filter(pl.col("name") == "retry").row(0, named=True)
    call = direct.filter(pl.col("name") == "call").row(0, named=True)
    assert json.loads(retry["links"]) == [{
        "trace_id": call["trace_id"], "span_id": call["span_id"], "trace_state": "",
        "attributes": {"reason": "retry of call"}}]


def test_export_over_otlp_to_a_collector() -> None:
    with SpanStore(None) as remote_store, Collector(remote_store, port=0) as collector:
        url = sdk.configure_export(endpoint=collector.url, service_name="remote-agent")
        assert url == collector.url + "/v1/traces"
        assert sdk.exporting_to() == url
        trace = start_trace("remote")
        with span(trace, name="call", type="llm", model="m") as llm:
            llm.record_tokens(input_tokens=1, output_tokens=2)
        with span(trace, name="tool", type="tool", input={"a": 1}) as tool:
            tool.set_output("ok")
        end_trace(trace, output="done")
        frame = remote_store.spans()
        assert frame.height == 3
        assert collector.counts.spans_accepted == 3
        rows = by_name(frame)
        assert rows["call"]["tokens_total"] == 3 and rows["call"]["model"] == "m"
        assert rows["tool"]["tool_args"] == '{"a":1}' and rows["tool"]["tool_result"] == "ok"
        assert rows["remote"]["output"] == "done"
        assert rows["remote"]["service"] == "remote-agent"
        assert {rows["call"]["parent_span_id"], rows["tool"]["parent_span_id"]} == {
            rows["remote"]["span_id"]}
        assert halo_nb.spans().height == 0  # not stored in this kernel as well


def test_export_over_otlp_and_keep_a_local_copy() -> None:
    with SpanStore(None) as remote_store, Collector(remote_store, port=0) as collector:
        sdk.configure_export(endpoint=collector.traces_url, local=True)
        with start_trace("both"):
            pass
        assert remote_store.spans().height == 1
        assert halo_nb.spans().height == 1


def test_otlp_endpoint_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with SpanStore(None) as remote_store, Collector(remote_store, port=0) as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        assert sdk.configure_export() == collector.url + "/v1/traces"
        with start_trace("from-env"):
            with span(name="child"):
                pass
        assert remote_store.spans().height == 2


def test_endpoint_of_this_kernels_collector_is_served_in_process() -> None:
    collector = halo_nb.serve()
    assert sdk.configure_export(endpoint=collector.url) is None
    with start_trace("local"):
        pass
    assert halo_nb.spans().height == 1
    assert collector.counts.requests_accepted == 0  # no network hop


def test_configure_export_rejects_a_bad_endpoint() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        sdk.configure_export(endpoint="localhost:4318")


def test_spans_of_a_running_trace_reach_the_store_without_end_trace() -> None:
    trace = start_trace("still-running")
    with span(trace, name="first-step", type="tool"):
        pass
    deadline = time.monotonic() + 10
    while halo_nb.store().trace_ids() != [trace.trace_id] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert halo_nb.spans()["name"].to_list() == ["first-step"]
    row = halo_nb.trace_table().row(0, named=True)
    assert row["ended"] is False and row["name"] == "first-step"
    with span(trace, name="second-step"):
        pass
    sdk.flush()  # no waiting needed after an explicit flush
    assert halo_nb.spans().height == 2
    end_trace(trace)
    assert halo_nb.trace_table().row(0, named=True)["ended"] is True


GLOBAL_PROVIDER_SCRIPT = """
import sys
import halo_nb
from opentelemetry import trace
from halo_nb import sdk

halo_nb.configure(storage_path=sys.argv[1], port=0)
sdk.configure_export(set_global=True)
library_tracer = trace.get_tracer("some.instrumentor")  # what an instrumentor would use
with sdk.start_trace("run") as run:
    with library_tracer.start_as_current_span("ChatCompletion",
                                              attributes={"openinference.span.kind": "LLM",
                                                          "llm.model_name": "gpt-x"}):
        with sdk.span(name="post-process"):
            pass
frame = halo_nb.spans()
rows = {row["name"]: row for row in frame.iter_rows(named=True)}
assert rows["ChatCompletion"]["parent_span_id"] == run.root.span_id, rows
assert rows["ChatCompletion"]["kind"] == "llm" and rows["ChatCompletion"]["model"] == "gpt-x"
assert rows["post-process"]["parent_span_id"] == rows["ChatCompletion"]["span_id"]
assert rows["ChatCompletion"]["scope_name"] == "some.instrumentor"
print("global ok", frame.height)
"""


def test_set_global_routes_instrumentor_spans_into_the_trace(tmp_path: Path) -> None:
    """In a fresh process: the global provider can be set once per process."""
    result = subprocess.run([sys.executable, "-c", GLOBAL_PROVIDER_SCRIPT, str(tmp_path)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "global ok 3"
