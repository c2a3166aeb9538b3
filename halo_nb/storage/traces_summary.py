"""One row per trace, derived from the span frame (the data behind the trace list).

The root is the span without a parent; while it has not arrived (spans export as they
end, the root last) the earliest span whose parent is missing stands in, and the trace
counts as not ``ended``.

Tokens: LLM spans carry the real usage, while agent/chain spans often repeat their
children's sum (GenAI ``invoke_agent``), so the total is the sum over LLM spans when
any has tokens, else the sum over all spans.
"""

from __future__ import annotations

import polars as pl

from ..schema import STATUS

TRACE_SCHEMA: dict[str, pl.DataType] = {
    "trace_id": pl.String(),
    "name": pl.String(),
    "start_ns": pl.Int64(),
    "end_ns": pl.Int64(),
    "duration_ms": pl.Float64(),
    "span_count": pl.UInt32(),
    "llm_count": pl.UInt32(),
    "tool_count": pl.UInt32(),
    "error_count": pl.UInt32(),
    "tokens_total": pl.Int64(),
    "status": STATUS,
    "input": pl.String(),
    "output": pl.String(),
    "service": pl.String(),
    "origin": pl.String(),
    "ended": pl.Boolean(),
}

# 0: a true root (no parent); 1: parent not in the trace (yet); 2: an inner span.
_RANK = "_root_rank"
_ROW = "_row"


def summarise_traces(spans: pl.DataFrame) -> pl.DataFrame:
    """The trace table for a span frame, newest trace first.

    Works on narrow columns first (ids, times, kinds) and gathers the root's wide text
    columns (input, output) by row number, so the cost stays near a group-by of the ids.
    """
    if spans.height == 0:
        return pl.DataFrame(schema=TRACE_SCHEMA)
    ids = spans.select("trace_id", "span_id", "parent_span_id", "start_ns").with_row_index(_ROW)
    present = ids.select("trace_id", pl.col("span_id").alias("parent_span_id"),
                         pl.lit(2, pl.Int8).alias(_RANK)).unique(
        subset=["trace_id", "parent_span_id"])
    ranked = ids.join(present, on=["trace_id", "parent_span_id"], how="left").with_columns(
        pl.when(pl.col("parent_span_id").is_null()).then(pl.lit(0, pl.Int8))
        .otherwise(pl.col(_RANK).fill_null(1)).alias(_RANK))
    roots = (ranked.sort([_RANK, "start_ns", _ROW])
             .unique(subset="trace_id", keep="first", maintain_order=True)
             .select("trace_id", _RANK, _ROW))
    # The store may hold name, service and origin as Categorical: the table has String.
    root_rows = spans[roots[_ROW]].select(
        pl.col("name").cast(pl.String), pl.col("status").alias("_root_status"), "input",
        "output", pl.col("end_ns").alias("_root_end"),
        pl.col("service").cast(pl.String).alias("_root_service"))
    roots = pl.concat([roots, root_rows], how="horizontal")

    is_llm = pl.col("kind") == "llm"
    llm_tokens = pl.col("tokens_total").filter(is_llm)
    totals = spans.group_by("trace_id").agg(
        pl.col("start_ns").min(),
        pl.col("end_ns").max(),
        pl.len().cast(pl.UInt32).alias("span_count"),
        is_llm.sum().cast(pl.UInt32).alias("llm_count"),
        (pl.col("kind") == "tool").sum().cast(pl.UInt32).alias("tool_count"),
        (pl.col("status") == "error").sum().cast(pl.UInt32).alias("error_count"),
        pl.when(llm_tokens.count() > 0).then(llm_tokens.sum())
        .when(pl.col("tokens_total").count() > 0).then(pl.col("tokens_total").sum())
        .otherwise(None).cast(pl.Int64).alias("tokens_total"),
        pl.col("service").drop_nulls().first().cast(pl.String).alias("_any_service"),
        pl.col("origin").drop_nulls().first().cast(pl.String).alias("origin"),
    )
    table = totals.join(roots, on="trace_id", how="left")
    return table.select(
        "trace_id",
        "name",
        "start_ns",
        "end_ns",
        ((pl.col("end_ns") - pl.col("start_ns")) / 1e6).alias("duration_ms"),
        "span_count",
        "llm_count",
        "tool_count",
        "error_count",
        "tokens_total",
        pl.when(pl.col("error_count") > 0).then(pl.lit("error"))
        .otherwise(pl.col("_root_status").cast(pl.String)).cast(STATUS).alias("status"),
        "input",
        "output",
        pl.coalesce("_root_service", "_any_service").alias("service"),
        "origin",
        ((pl.col(_RANK) == 0) & pl.col("_root_end").is_not_null()).alias("ended"),
    ).sort(_ORDER, descending=_DESCENDING)


_ORDER = ["start_ns", "trace_id"]
_DESCENDING = [True, False]


def update_summary(table: pl.DataFrame, spans: pl.DataFrame, trace_ids: list[str]) -> pl.DataFrame:
    """``table`` with the rows of ``trace_ids`` recomputed from ``spans`` (all spans, or at
    least all of those traces'), cheaper than summarising everything again."""
    fresh = summarise_traces(spans.filter(pl.col("trace_id").is_in(trace_ids)))
    kept = table.filter(~pl.col("trace_id").is_in(trace_ids))
    return pl.concat([kept, fresh]).sort(_ORDER, descending=_DESCENDING)
