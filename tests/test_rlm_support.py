"""Helpers for the RLM engine tests: build traces as Node trees and send them through
SpanFrameBuilder (the collector's normaliser) in a chosen attribute convention."""

from __future__ import annotations

import json
import random
from typing import Any

import polars as pl

from evaluation.corpus import WEB_SEARCH, Node, add_trace
from halo_nb.config import Settings
from halo_nb.ingest.frame_builder import SpanFrameBuilder
from halo_nb.rlm import AnalysisResult, analyze_frame


def llm(output: str | None = "thinking", tokens_in: int = 500, tokens_out: int = 100,
        dur: float = 800, declared: list[dict] | None = None, finish: str = "stop",
        input: str | None = "prompt") -> Node:
    return Node("llm", "chat gpt-4o-mini", dur_ms=dur, input=input, output=output,
                tokens_in=tokens_in, tokens_out=tokens_out, finish=finish, declared=declared)


def tool(args: Any = None, result: str | None = '[{"title": "a page"}]', name: str = "web_search",
         dur: float = 300, error: tuple[str, str] | None = None) -> Node:
    return Node("tool", f"execute_tool {name}", dur_ms=dur, tool=name,
                args={"query": "python asyncio"} if args is None else args, result=result,
                error=error)


def agent(*children: Node, name: str = "research_agent", input: str | None = "question",
          output: str | None = "the answer", kind: str = "agent") -> Node:
    return Node(kind, name, dur_ms=10, input=input, output=output, children=list(children))


def build(*traces: Node | tuple[Node, dict[str, Any]], convention: str = "openinference",
          content: bool = True) -> pl.DataFrame:
    """A span frame with one trace per root (a root may come with add_trace options)."""
    builder = SpanFrameBuilder()
    for n, item in enumerate(traces):
        root, options = item if isinstance(item, tuple) else (item, {})
        options = {"convention": convention, "content": content, **options}
        add_trace(builder, root, trace_id=f"{n + 1:032x}", start_ns=1_767_225_600 * 10**9
                  + n * 60 * 10**9, rng=random.Random(n), **options)
    return builder.build()


def analyze(frame: pl.DataFrame, **settings: Any) -> AnalysisResult:
    return analyze_frame(frame, Settings(**{"model": "none", **settings}))


def found(result: AnalysisResult, detector: str | None = None) -> list[dict[str, Any]]:
    rows = result.findings.to_dicts()
    for row in rows:
        row["evidence"] = json.loads(row["evidence"])
    return [r for r in rows if detector is None or r["detector"] == detector]


def react(*rounds: tuple[Node, Node], final: str = "the answer", **kw: Any) -> Node:
    """A ReAct trace: each round an LLM call then a tool call, then a final LLM call."""
    children: list[Node] = []
    for call, result in rounds:
        children += [call, result]
    children.append(llm(final, declared=[WEB_SEARCH]))
    return agent(*children, **kw)
