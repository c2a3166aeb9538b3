"""Latency and token outliers against all spans with the same label in the corpus
(robust statistics computed once, vectorised, in prepare.py)."""

from __future__ import annotations

from ..graph import SpanNode
from ..registry import Hit, detector
from ..walk import NodeContext


@detector("latency_outlier", severity="low", scope="span", requires="lat_outlier")
def latency_outlier(span: SpanNode, ctx: NodeContext) -> Hit | None:
    """A span far slower than the other spans with its label: robust z (median/MAD) >= 6,
    at least 4x the median and 500 ms over it, among at least 20 samples (prepare.py).
    LLM spans that report tokens are compared per token processed, so a long answer is
    not mistaken for a slow call.
    A span with children is reported only when most of the extra time is its own, not
    spent in its children (slow or numerous children are reported by their detectors)."""
    if not span.lat_outlier:
        return None
    expected = span.lat_expected_ms
    excess = span.duration_ms - expected
    children = ctx.trace.children(span)
    if children:
        in_children = sum(c.duration_ms or 0.0 for c in children)
        if span.duration_ms - in_children < 0.5 * excess:
            return None
    return Hit(span.span_id,
               f"{span.duration_ms:.0f} ms where {expected:.0f} ms is typical",
               {"duration_ms": round(span.duration_ms, 3), "median_ms": round(expected, 3),
                "robust_z": round(span.lat_z, 2), "excess_ms": round(excess, 3)})


@detector("token_outlier", severity="low", scope="span", kinds=("llm",),
          requires="tok_outlier")
def token_outlier(span: SpanNode, ctx: NodeContext) -> Hit | None:
    """An LLM call producing far more tokens (output tokens, else total) than other calls
    with its label, by the same robust test as latency_outlier."""
    if not span.tok_outlier:
        return None
    return Hit(span.span_id,
               f"{span.tok_value:.0f} tokens against a median of {span.tok_median:.0f}",
               {"tokens": int(span.tok_value), "median_tokens": span.tok_median,
                "robust_z": round(span.tok_z, 2)})
