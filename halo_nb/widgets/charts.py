"""Plotly figures for the dashboard: latency by span name, tokens per trace over time,
cluster prevalence. Figures are built from aggregates, so their JSON stays small however
many spans are stored."""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go
import polars as pl

MAX_SPAN_NAMES = 15
MAX_TRACE_POINTS = 20_000
SEVERITY_COLORS = {"critical": "#b71c1c", "high": "#e53935", "medium": "#fb8c00",
                   "low": "#fdd835", "info": "#90a4ae"}


def label(text: Any) -> str:
    """Span or cluster text as a plotly label: plotly reads a subset of HTML in labels
    (``<b>``, ``<span style>``, entities), so markup characters are escaped to show as text."""
    return html.escape("" if text is None else str(text), quote=False)


def latency_by_span_name(spans: pl.DataFrame) -> go.Figure | None:
    """Box per span name (the most frequent names), quartiles computed in Polars."""
    done = spans.filter(pl.col("duration_ms").is_not_null())
    if done.height == 0:
        return None
    stats = (done.group_by("name").agg(
        pl.len().alias("n"),
        pl.col("duration_ms").min().alias("min"),
        pl.col("duration_ms").quantile(0.25).alias("q1"),
        pl.col("duration_ms").median().alias("median"),
        pl.col("duration_ms").quantile(0.75).alias("q3"),
        pl.col("duration_ms").max().alias("max"),
    ).sort("n", descending=True).head(MAX_SPAN_NAMES).sort("median"))
    fig = go.Figure()
    for row in stats.iter_rows(named=True):
        name = label(row["name"])
        fig.add_trace(go.Box(
            y=[name], q1=[row["q1"]], median=[row["median"]], q3=[row["q3"]],
            lowerfence=[row["min"]], upperfence=[row["max"]], name=name,
            orientation="h", showlegend=False, hovertext=f"{row['n']} spans"))
    fig.update_layout(title="Latency by span name (ms)", xaxis_type="log",
                      xaxis_title="duration (ms, log scale)")
    return fig


def tokens_over_time(traces: pl.DataFrame) -> go.Figure | None:
    points = traces.filter(pl.col("tokens_total").is_not_null()).sort("start_ns").tail(
        MAX_TRACE_POINTS)
    if points.height == 0:
        return None
    fig = go.Figure()
    for status, color in (("error", "#e53935"), ("ok", "#1e88e5"), ("unset", "#78909c")):
        part = points.filter(pl.col("status").cast(pl.String) == status)
        if part.height == 0:
            continue
        fig.add_trace(go.Scattergl(
            x=pl.from_epoch(part["start_ns"], time_unit="ns").to_list(),
            y=part["tokens_total"].to_list(), mode="markers", name=status,
            marker={"color": color, "size": 6}, text=[label(n) for n in part["name"]],
            customdata=[label(t) for t in part["trace_id"]],
            hovertemplate="%{text}<br>%{y} tokens<br>%{x}<extra>%{customdata}</extra>"))
    title = "Tokens per trace over time"
    if traces.height > MAX_TRACE_POINTS:
        title += f" (latest {MAX_TRACE_POINTS:,} traces)"
    fig.update_layout(title=title, yaxis_title="tokens (log scale)", yaxis_type="log",
                      xaxis_title="trace start")
    return fig


def cluster_prevalence(clusters: pl.DataFrame | None) -> go.Figure | None:
    if clusters is None or clusters.height == 0:
        return None
    rows = clusters.sort("prevalence")
    names = rows["title"] if "title" in rows.columns else rows["signature"]
    labels = [label(f"{cid}: {_short(name)}") for cid, name in
              zip(rows["cluster_id"].cast(pl.String), names.cast(pl.String), strict=True)]
    fig = go.Figure(go.Bar(
        x=(rows["prevalence"] * 100).to_list(), y=labels, orientation="h",
        hovertext=[label(s) for s in rows["signature"].cast(pl.String)],
        marker={"color": [SEVERITY_COLORS.get(str(s), "#90a4ae") for s in rows["severity"]]},
        text=[f"{n} traces" for n in rows["trace_count"]], textposition="auto"))
    fig.update_layout(title="Failure cluster prevalence (% of traces)",
                      xaxis={"title": "% of traces", "range": [0, 100]},
                      yaxis={"automargin": True})
    return fig


def _short(text: str | None, limit: int = 48) -> str:
    text = text or ""
    return text if len(text) <= limit else f"{text[:limit - 1]}…"


def chart_figures(spans: pl.DataFrame, traces: pl.DataFrame,
                  clusters: pl.DataFrame | None) -> list[dict[str, Any]]:
    """The dashboard's charts as ``{"title", "figure"}`` with the figure as plotly JSON."""
    figures = [("latency", latency_by_span_name(spans)), ("tokens", tokens_over_time(traces)),
               ("clusters", cluster_prevalence(clusters))]
    return [{"title": title, "figure": fig.to_json()} for title, fig in figures if fig is not None]
