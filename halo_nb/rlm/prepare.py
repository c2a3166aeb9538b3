"""Corpus-wide, vectorised preparation of the span frame (Polars, no per-span Python).

Adds the columns the per-trace walk reads: the span label, exception and failure-word
flags, and robust outlier statistics (median / MAD per span label across the corpus).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import polars as pl

from .signatures import span_label
from .text import FAILURE_PATTERN, is_empty_result, unwrap_tool_args, unwrap_tool_result

# A tool is empty by design (a scratchpad, a fire-and-forget action) when every call
# of it in the corpus came back empty without error, none was repeated with the same
# arguments in its trace (nobody retried it), and at least this many of its traces
# succeeded otherwise: no span failed and another tool returned data.
EMPTY_BY_DESIGN_MIN_TRACES = 3

# Outliers: at least this many samples of a label, robust z above Z, value at least
# RATIO times the median and at least the absolute excess below (half a second: a
# process's first call, slower by its one-off setup, is not what a user debugs).
OUTLIER_MIN_SAMPLES = 20
OUTLIER_Z = 6.0
OUTLIER_RATIO = 4.0
LATENCY_MIN_EXCESS_MS = 500.0
TOKENS_MIN_EXCESS = 100
_MAD_TO_SIGMA = 1.4826

# Attributes read for an LLM span's declared tools, in this order:
#   llm.tools                      OpenInference, JSON list (or list) of tool objects
#   llm.tools.<i>.tool.json_schema OpenInference, flattened
#   gen_ai.tool.definitions        OTel GenAI
#   gen_ai.request.tools, gen_ai.request.available_tools   other GenAI-style exporters
#   halo.tools                     the halo SDK
DECLARED_TOOL_KEYS = ("llm.tools", "gen_ai.tool.definitions", "gen_ai.request.tools",
                      "gen_ai.request.available_tools", "halo.tools")
_KEYS = "|".join(k.replace(".", r"\.") for k in DECLARED_TOOL_KEYS)
_JSON_STRING = r'"(?:[^"\\]|\\.)*"'
# One declaration attribute in the attributes JSON: "key":"<json text>" or "key":["..."].
DECLARATION_PATTERN = (rf'"(?:{_KEYS})(?:\.\d+\.tool\.json_schema)?":'
                       rf'(?:{_JSON_STRING}|\[(?:{_JSON_STRING},?)*\])')

NEEDED = ("trace_id", "span_id", "parent_span_id", "name", "kind", "start_ns", "end_ns",
          "duration_ms", "status", "status_message", "model", "tokens_in", "tokens_out",
          "tokens_total", "tool_name", "tool_args", "tool_result", "input", "output",
          "finish_reason", "attributes", "events", "service")


@dataclass(frozen=True)
class CorpusStats:
    """What prepare() learns from the whole corpus: the tools empty by design and the
    robust latency / token statistics per span label. A partition of a larger corpus is
    prepared with the statistics of the whole (halo_nb.distributed computes them first)."""

    empty_by_design: list[str]
    latency: pl.DataFrame  # group (lat_group), lat_median, lat_spread, lat_n
    tokens: pl.DataFrame   # group (label), tok_median, tok_spread, tok_n


def prepare(spans: pl.DataFrame) -> pl.DataFrame:
    """The frame sorted by trace and start time, one row per (trace_id, span_id),
    with the analysis columns added."""
    rows = prepare_rows(spans)
    return with_corpus_stats(rows, corpus_stats_of(rows))


def corpus_stats_of(rows: pl.DataFrame) -> CorpusStats:
    """The corpus statistics of ``rows`` (prepare_rows) alone."""
    latency, tokens = outlier_values(rows)
    return CorpusStats(empty_by_design_tools([tool_usage(rows)]),
                       outlier_table(latency, "lat"), outlier_table(tokens, "tok"))


def prepare_rows(spans: pl.DataFrame) -> pl.DataFrame:
    """prepare() without the corpus statistics: the columns that depend only on a span's
    own trace, so a partition of whole traces is prepared alone."""
    missing = [c for c in NEEDED if c not in spans.columns]
    if missing:
        raise ValueError(f"span frame: missing column(s) {', '.join(missing)} "
                         "(see halo_nb.schema.SPAN_SCHEMA)")
    frame = (
        spans.select(NEEDED)
        .with_columns(pl.col("kind").cast(pl.String), pl.col("status").cast(pl.String),
                      # a span without a start time is placed at its end (or at 0)
                      pl.col("start_ns").fill_null(pl.col("end_ns")).fill_null(0))
        .unique(subset=["trace_id", "span_id"], keep="first", maintain_order=True)
        # Equal starts (OTel JS rounds start times to the millisecond) go in end order:
        # a tool that ended first ran first.
        .sort(["trace_id", "start_ns", "end_ns", "span_id"], nulls_last=True)
    )
    frame = _with_tool_values(frame)
    frame = _with_labels(frame)
    haystack = pl.concat_str(
        [pl.col("status_message"), pl.col("output"), pl.col("tool_result"), pl.col("attributes")],
        separator="\n", ignore_nulls=True)
    has_exception = pl.col("events").fill_null("").str.contains(
        r"\"name\"\s*:\s*\"exception\"")
    frame = frame.with_columns(
        has_exception.alias("has_exception"),
        ((pl.col("status") == "error").fill_null(False) | has_exception).alias("failed"),
        pl.col("end_ns").is_null().alias("unended"),
        haystack.fill_null("").str.contains(FAILURE_PATTERN).alias("fw_candidate"),
        pl.when(pl.col("kind").is_in(["llm", "agent"])).then(
            pl.col("attributes").str.extract_all(DECLARATION_PATTERN)).alias("declared"),
        pl.coalesce(pl.col("tokens_out"), pl.col("tokens_total")).cast(pl.Float64)
        .alias("tok_value"),
    ).with_row_index("row")
    # Declarations as a small JSON object of just those attributes; identical ones are
    # parsed once (detectors/common.py).
    frame = frame.with_columns(
        pl.when(pl.col("declared").list.len() > 0)
        .then(pl.concat_str(pl.lit("{"), pl.col("declared").list.join(","), pl.lit("}")))
        .alias("declared_json"))
    # The big JSON columns go to Python only where a built-in detector reads them.
    needs_attributes = pl.col("fw_candidate") | pl.col("failed")
    frame = frame.with_columns(
        pl.when(needs_attributes).then(pl.col("attributes")).alias("attributes_inline"),
        pl.when(pl.col("has_exception")).then(pl.col("events")).alias("events_inline"),
    )
    # LLM latency grows with the tokens processed: LLM spans that report tokens are
    # compared per token (a long final answer is not slow), everything else in ms.
    per_token = (pl.col("kind") == "llm") & (pl.col("tokens_total") > 0)
    frame = frame.with_columns(
        pl.when(per_token).then(pl.col("duration_ms") / pl.col("tokens_total"))
        .otherwise(pl.col("duration_ms")).alias("lat_value"),
        pl.when(per_token).then(pl.col("tokens_total")).otherwise(1).cast(pl.Float64)
        .alias("lat_units"),
        pl.concat_str(pl.col("label"), pl.when(per_token).then(pl.lit("|per_token"))
                      .otherwise(pl.lit(""))).alias("lat_group"))
    return frame


def with_corpus_stats(rows: pl.DataFrame, stats: CorpusStats) -> pl.DataFrame:
    """prepare_rows' frame with the columns that compare a span with the corpus."""
    names = pl.Series(stats.empty_by_design, dtype=pl.String).implode()
    frame = rows.with_columns(((pl.col("kind") == "tool") & pl.col("tool_name").is_in(names))
                              .fill_null(False).alias("empty_by_design"))
    frame = _with_outliers(frame, stats.latency, "lat_value", "lat_group", "lat")
    expected = (pl.col("lat_median") * pl.col("lat_units")).alias("lat_expected_ms")
    frame = frame.with_columns(expected).with_columns(
        pl.col("lat_outlier") & ((pl.col("duration_ms") - pl.col("lat_expected_ms"))
                                 >= LATENCY_MIN_EXCESS_MS).fill_null(False))
    frame = _with_outliers(frame, stats.tokens, "tok_value", "label", "tok")
    return frame.with_columns(
        pl.col("tok_outlier") & ((pl.col("tok_value") - pl.col("tok_median"))
                                 >= TOKENS_MIN_EXCESS).fill_null(False))


def _with_tool_values(frame: pl.DataFrame) -> pl.DataFrame:
    """Tool names, arguments and results as the tool saw them: a tool span without them
    takes its span name, input and output (OpenInference JS and traceloop write only
    those), traceloop's
    ``{"args", "kwargs"}`` and LangChain's ToolMessage wrappers are unwrapped
    (text.unwrap_tool_args / unwrap_tool_result)."""
    is_tool = pl.col("kind") == "tool"
    frame = frame.with_columns(
        # OpenInference JS's traceTool names the span after the tool and nothing else
        pl.when(is_tool).then(pl.coalesce("tool_name", "name")).otherwise("tool_name")
        .alias("tool_name"),
        pl.when(is_tool).then(pl.coalesce("tool_args", "input")).otherwise("tool_args")
        .alias("tool_args"),
        pl.when(is_tool).then(pl.coalesce("tool_result", "output")).otherwise("tool_result")
        .alias("tool_result"))
    # only values that can be wrappers go to Python (a cheap text test first)
    for column, unwrap, marker in (("tool_args", unwrap_tool_args, r'"kwargs"'),
                                   ("tool_result", unwrap_tool_result,
                                    r'"type":\s*"tool"|"ToolMessage"')):
        wrapped = is_tool & (pl.col(column).str.starts_with("{")
                             & pl.col(column).str.contains(marker)).fill_null(False)
        values = frame.filter(wrapped)[column].unique().to_list()
        if not values:
            continue
        table = {v: unwrap(v) for v in values}
        frame = frame.with_columns(
            pl.when(wrapped).then(pl.col(column).replace_strict(table, default=pl.col(column),
                                                                return_dtype=pl.String))
            .otherwise(pl.col(column)).alias(column))
    return frame


_TOOL_USAGE_SCHEMA = {"tool_name": pl.String, "empty": pl.Boolean, "repeated": pl.Boolean,
                      "traces": pl.UInt32}


def tool_usage(frame: pl.DataFrame) -> pl.DataFrame:
    """Per tool name over whole traces: whether every call came back empty without error,
    whether any was repeated with the same arguments in its trace, and in how many of
    its traces the run succeeded otherwise (no span failed, another tool returned data);
    partitions of whole traces merge with empty_by_design_tools."""
    tools = frame.filter((pl.col("kind") == "tool") & pl.col("tool_name").is_not_null())
    if tools.is_empty():
        return pl.DataFrame(schema=_TOOL_USAGE_SCHEMA)
    results = tools["tool_result"].drop_nulls().unique().to_list()
    empty_text = {v: is_empty_result(v) for v in results}
    empty = (pl.when(pl.col("tool_result").is_null()).then(pl.col("tool_args").is_not_null())
             .otherwise(pl.col("tool_result").replace_strict(empty_text, default=False,
                                                             return_dtype=pl.Boolean)))
    repeats = (pl.len().over("trace_id", "tool_name", "tool_args") > 1) & pl.col(
        "tool_args").is_not_null()
    tools = tools.with_columns((empty & ~pl.col("failed")).alias("empty"),
                               repeats.alias("repeated"))
    # traces that succeeded otherwise: no span failed and another tool returned data
    failed_traces = frame.filter(pl.col("failed"))["trace_id"].unique().implode()
    with_data = (tools.filter(~pl.col("empty") & ~pl.col("failed"))
                 .select("trace_id", pl.col("tool_name").alias("data_tool")).unique())
    succeeded = (tools.select("trace_id", "tool_name").unique()
                 .join(with_data, on="trace_id")
                 .filter((pl.col("data_tool") != pl.col("tool_name"))
                         & ~pl.col("trace_id").is_in(failed_traces))
                 .group_by("tool_name")
                 .agg(pl.col("trace_id").n_unique().cast(pl.UInt32).alias("traces")))
    return (tools.group_by("tool_name").agg(pl.col("empty").all(), pl.col("repeated").any())
            .join(succeeded, on="tool_name", how="left")
            .with_columns(pl.col("traces").fill_null(0)))


def empty_by_design_tools(usages: Sequence[pl.DataFrame]) -> list[str]:
    """The tools empty by design (EMPTY_BY_DESIGN_MIN_TRACES) in the corpus whose
    partitions have these tool_usage frames: learned from the corpus, so a scratchpad
    tool is not reported as returning nothing."""
    by_tool = (pl.concat([pl.DataFrame(schema=_TOOL_USAGE_SCHEMA),
                          *(u.cast(_TOOL_USAGE_SCHEMA) for u in usages)])
               .group_by("tool_name")
               .agg(pl.col("empty").all(), pl.col("repeated").any(), pl.col("traces").sum()))
    names = by_tool.filter(pl.col("empty") & ~pl.col("repeated")
                           & (pl.col("traces") >= EMPTY_BY_DESIGN_MIN_TRACES).fill_null(False)
                           )["tool_name"]
    return sorted(names.to_list())


def _with_labels(frame: pl.DataFrame) -> pl.DataFrame:
    keys = frame.select("kind", "name", "tool_name", "model").unique()
    labels = [span_label(k, n, t, m) for k, n, t, m in keys.iter_rows()]
    table = keys.with_columns(pl.Series("label", labels, dtype=pl.String))
    return frame.join(table, on=["kind", "name", "tool_name", "model"], how="left",
                      nulls_equal=True, maintain_order="left")


def outlier_values(rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The samples behind the outlier statistics, as (group, value) frames: latency per
    lat_group, output tokens per label."""
    def samples(column: str, group: str) -> pl.DataFrame:
        # -0.0 as 0.0: a sort may put equal zeros in either order, so a median of two
        # zeros would take the sign of whichever came first
        return rows.select(pl.col(group).alias("group"), (pl.col(column) + 0.0).alias("value")
                           ).drop_nulls("value")

    return samples("lat_value", "lat_group"), samples("tok_value", "label")


def outlier_table(values: pl.DataFrame, prefix: str) -> pl.DataFrame:
    """Per group of ``values`` (outlier_values; each group whole): the median, the spread
    (spread_table) and the sample count. Values are sorted first and the fallback mean
    summed exactly, so any partitioning of the groups gives the same numbers to the last
    bit."""
    x = pl.col("value")
    table = (values.sort("group", "value", nulls_last=True)
             .group_by("group", maintain_order=True)
             .agg(x.median().alias("median"), (x - x.median()).abs().median().alias("mad"),
                  x.count().alias("n")))
    flat = (values.join(table.filter(~(pl.col("mad") > 0)), on="group", nulls_equal=True)
            .select("group", "n", (x - pl.col("median")).abs().alias("deviation")))
    means = [(group, mean_of(deviation_sum(part["deviation"].to_numpy()), part["n"][0]))
             for (group,), part in flat.partition_by("group", as_dict=True).items()]
    return spread_table(table, means, prefix)


def spread_table(table: pl.DataFrame, means: Sequence[tuple[str | None, float]],
                 prefix: str) -> pl.DataFrame:
    """The outlier table from each group's median, MAD (median absolute deviation) and
    count (``table``) and, where the MAD is not above 0, its mean absolute deviation
    (``means``): the spread is 1.4826 * MAD, or the mean absolute deviation times 1.2533."""
    mean = pl.DataFrame(means, schema={"group": pl.String, "mean": pl.Float64}, orient="row")
    spread = pl.when(pl.col("mad") > 0).then(pl.col("mad") * _MAD_TO_SIGMA).otherwise(
        pl.col("mean") * 1.2533)
    return (table.join(mean, on="group", how="left", nulls_equal=True, maintain_order="left")
            .select("group", pl.col("median").alias(f"{prefix}_median"),
                    spread.alias(f"{prefix}_spread"),
                    pl.col("n").cast(pl.get_index_type()).alias(f"{prefix}_n")))


def deviation_sum(deviations: np.ndarray) -> tuple[Fraction, float]:
    """The sum of float64 ``deviations`` as (the exact sum of the finite ones, the float
    sum of the others: 0.0, inf or nan). Sums of parts add up to the sum of the whole
    exactly, in any order: a corpus in pieces sums like a corpus in one frame."""
    finite = np.isfinite(deviations)
    mantissas, exponents = np.frexp(deviations[finite])
    integers = np.ldexp(mantissas, 53).astype(np.int64)  # value = integer * 2**(exponent - 53)
    total = Fraction(0)
    for exponent in np.unique(exponents):
        chosen = integers[exponents == exponent]  # halves of 27 bits: no int64 overflow
        whole = (int((chosen >> 26).sum()) << 26) + int((chosen & (1 << 26) - 1).sum())
        total += whole * Fraction(2) ** int(exponent - 53)
    return total, float(deviations[~finite].sum())


def mean_of(total: tuple[Fraction, float], n: int) -> float:
    """The mean of ``n`` values whose deviation_sum is ``total``, correctly rounded."""
    exact, other = total
    return other if other else float(exact / n)


def _with_outliers(frame: pl.DataFrame, table: pl.DataFrame, column: str, group: str,
                   prefix: str) -> pl.DataFrame:
    """Robust z of ``column`` against all spans of the same ``group`` in the corpus
    (``table``, from outlier_table): (x - median) / spread. Adds ``<prefix>_median``,
    ``<prefix>_z``, ``<prefix>_n`` and ``<prefix>_outlier`` (enough samples, z and ratio
    over their thresholds)."""
    x = pl.col(column)
    frame = frame.join(table.rename({"group": group}), on=group, how="left", nulls_equal=True,
                       maintain_order="left")
    frame = frame.with_columns(((x - pl.col(f"{prefix}_median")) / pl.col(f"{prefix}_spread"))
                               .alias(f"{prefix}_z"), pl.col(f"{prefix}_n").fill_null(0)
                               ).drop(f"{prefix}_spread")
    z, med = pl.col(f"{prefix}_z"), pl.col(f"{prefix}_median")
    flag = ((pl.col(f"{prefix}_n") >= OUTLIER_MIN_SAMPLES) & z.is_finite() & (z >= OUTLIER_Z)
            & (x >= med * OUTLIER_RATIO))
    return frame.with_columns(flag.fill_null(False).alias(f"{prefix}_outlier"))
