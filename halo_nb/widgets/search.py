"""Text search behind the views: which traces (trace list) or which spans of one trace
(find-in-trace) mention a text in their names, tools, arguments, input or output.

Case-insensitive, literal (the text is escaped, never a pattern), on the span frame's
own columns, so the store needs no extra index.
"""

from __future__ import annotations

import re

import polars as pl

TRACE_SEARCH_COLUMNS = ("name", "tool_name", "tool_args", "tool_result", "input", "output",
                        "status_message")
# Inside one trace everything the detail pane shows is searchable, attributes included.
SPAN_FIND_COLUMNS = (*TRACE_SEARCH_COLUMNS, "span_id", "model", "attributes")


def _mentions(text: str, columns: tuple[str, ...], present: list[str]) -> pl.Expr:
    pattern = "(?i)" + re.escape(text)
    return pl.any_horizontal(pl.col(name).cast(pl.String).str.contains(pattern).fill_null(False)
                             for name in columns if name in present)


def matching_traces(spans: pl.DataFrame, text: str) -> list[str]:
    """Ids of the traces with a span mentioning ``text`` (empty text: none)."""
    if not text.strip() or spans.height == 0:
        return []
    hits = spans.filter(_mentions(text.strip(), TRACE_SEARCH_COLUMNS, spans.columns))
    return hits["trace_id"].unique(maintain_order=True).to_list()


def matching_spans(spans: pl.DataFrame, text: str) -> list[str]:
    """Ids of the spans (of one trace) mentioning ``text``."""
    if not text.strip() or spans.height == 0:
        return []
    return spans.filter(_mentions(text.strip(), SPAN_FIND_COLUMNS, spans.columns))[
        "span_id"].to_list()
