"""Agent-shaped span data for the widget tests and benchmarks, built through the same
SpanFrameBuilder every decoder uses (so the frames carry the real schema and derivations)."""

from __future__ import annotations

import hashlib
import json
import random
import time

import polars as pl

from halo_nb.ingest.frame_builder import SpanFrameBuilder

MS = 1_000_000
# Recent enough that the store's retention (days) never drops the corpus mid-test.
BASE_NS = (time.time_ns() // (1000 * MS) - 3_600) * 1000 * MS


def trace_id_of(n: int) -> str:
    return hashlib.blake2b(f"trace-{n}".encode(), digest_size=16).hexdigest()


def span_id_of(trace: int, n: int) -> str:
    return hashlib.blake2b(f"span-{trace}-{n}".encode(), digest_size=8).hexdigest()


def agent_trace(builder: SpanFrameBuilder, n: int, *, failing: bool = False,
                start_ns: int | None = None, question: str = "Where is my order #1234?") -> str:
    """One support-agent run: plan (LLM) → tools → answer (LLM). A failing run's
    ``lookup_order`` tool errors three times with the same arguments, then gives up."""
    trace_id = trace_id_of(n)
    t0 = BASE_NS + n * 5_000 * MS if start_ns is None else start_ns
    ids = iter(range(1, 100))
    root = span_id_of(n, next(ids))
    spans: list[dict] = []

    def add(name: str, parent: str | None, start: int, dur_ms: float, attrs: dict,
            status: int = 1, events: tuple = (), message: str | None = None) -> str:
        span_id = span_id_of(n, next(ids))
        spans.append(dict(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name,
                          start_ns=start, end_ns=start + int(dur_ms * MS), status_code=status,
                          status_message=message, attributes=attrs, events=list(events),
                          resource={"service.name": "support-bot"}))
        return span_id

    plan_tokens = 700 + (n * 37) % 400
    add("plan", root, t0 + 5 * MS, 820 + (n * 13) % 300, {
        "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
        "llm.token_count.prompt": plan_tokens, "llm.token_count.completion": 64,
        "input.value": question, "output.value": "Call lookup_order with the order id."})
    t = t0 + 900 * MS
    add("search_docs", root, t, 120, {
        "openinference.span.kind": "TOOL", "tool.name": "search_docs",
        "input.value": json.dumps({"query": "order status"}),
        "output.value": "Orders ship within 2 days."},
        events=({"name": "halo.annotation", "time_ns": t + 50 * MS,
                 "attributes": {"halo.annotation.label": "relevant", "halo.annotation.score": 1}},))
    t += 150 * MS
    args = json.dumps({"order_id": "1234"})
    attempts = 3 if failing else 1
    for attempt in range(attempts):
        timeout = {"name": "exception", "time_ns": t + 299 * MS,
                   "attributes": {"exception.type": "TimeoutError",
                                  "exception.message": "orders API timed out"}}
        add("lookup_order", root, t, 300, {
            "openinference.span.kind": "TOOL", "tool.name": "lookup_order", "input.value": args,
            "output.value": None if failing else json.dumps({"status": "shipped"}),
            "halo.attempt": attempt + 1},
            status=2 if failing else 1,
            message="TimeoutError: orders API timed out" if failing else None,
            events=(timeout,) if failing else ())
        t += 320 * MS
    answer = ("Sorry, I could not look up your order." if failing
              else "Your order #1234 has shipped and arrives tomorrow.")
    add("answer", root, t, 640, {
        "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
        "llm.token_count.prompt": plan_tokens + 300, "llm.token_count.completion": 40,
        "input.value": "x" * 2_000 + " (long prompt)", "output.value": answer})
    t += 700 * MS
    builder.add(trace_id=trace_id, span_id=root, parent_span_id=None, name="support-agent",
                start_ns=t0, end_ns=t, status_code=2 if failing else 1,
                status_message="lookup_order failed" if failing else None,
                attributes={"openinference.span.kind": "AGENT", "input.value": question,
                            "output.value": answer},
                resource={"service.name": "support-bot"})
    for span in spans:
        builder.add(**span)
    return trace_id


def agent_traces(count: int, failing_every: int = 3, first: int = 1) -> pl.DataFrame:
    builder = SpanFrameBuilder()
    for n in range(first, first + count):
        agent_trace(builder, n, failing=(n % failing_every == 0))
    return builder.build()


def wide_trace(span_count: int, n: int = 900_000, seed: int = 7) -> pl.DataFrame:
    """One trace of ``span_count`` spans: an agent loop of steps, each with an LLM call and
    tool calls, nested a few levels deep; a few spans error."""
    rng = random.Random(seed)
    builder = SpanFrameBuilder()
    trace_id = trace_id_of(n)
    t0 = BASE_NS
    root = span_id_of(n, 0)
    made = 1
    parents = [(root, 0)]
    starts = {root: t0}
    kinds = ("LLM", "TOOL", "CHAIN", "RETRIEVER")
    while made < span_count:
        parent, depth = parents[rng.randrange(len(parents))]
        start = starts[parent] + rng.randrange(1, 50) * MS
        kind = kinds[rng.randrange(len(kinds))]
        span_id = span_id_of(n, made)
        error = rng.random() < 0.002
        builder.add(trace_id=trace_id, span_id=span_id, parent_span_id=parent,
                    name=f"{kind.lower()}-{made % 40}", start_ns=start,
                    end_ns=start + rng.randrange(2, 400) * MS, status_code=2 if error else 1,
                    attributes={"openinference.span.kind": kind,
                                "llm.token_count.total": rng.randrange(50, 900)})
        starts[span_id] = start
        if depth < 6:
            parents.append((span_id, depth + 1))
        made += 1
    builder.add(trace_id=trace_id, span_id=root, parent_span_id=None, name="long-agent-run",
                start_ns=t0, end_ns=max(starts.values()) + 500 * MS, status_code=1,
                attributes={"openinference.span.kind": "AGENT"})
    return builder.build()


def many_traces(count: int) -> pl.DataFrame:
    """``count`` small traces (a root and one LLM child each), built column-wise for speed
    with the span-frame schema."""
    from halo_nb.schema import SPAN_SCHEMA

    rng = random.Random(3)
    rows = []
    for n in range(count):
        trace_id = trace_id_of(n)
        start = BASE_NS + n * 997 * MS
        duration = rng.randrange(200, 20_000) * MS
        error = n % 17 == 0
        tokens = rng.randrange(100, 5_000)
        for span_n, parent, name, kind in ((0, None, f"agent-{n % 50}", "agent"),
                                           (1, span_id_of(n, 0), "chat", "llm")):
            rows.append({
                "trace_id": trace_id, "span_id": span_id_of(n, span_n), "parent_span_id": parent,
                "name": name, "kind": kind, "start_ns": start + span_n * MS,
                "end_ns": start + duration, "duration_ms": (duration - span_n * MS) / 1e6,
                "status": "error" if error and span_n == 1 else "ok", "service": "fleet",
                "tokens_total": tokens if span_n == 1 else None, "attributes": "{}",
                "events": "[]", "input": f"question {n}" if span_n == 0 else None})
    return pl.DataFrame(rows, schema={k: SPAN_SCHEMA[k] for k in rows[0]}).select(
        pl.col(name) if name in rows[0] else pl.lit(None, dtype).alias(name)
        for name, dtype in SPAN_SCHEMA.items())
