"""Compare two traces: align their span trees and say what changed.

Spans are aligned level by level: the children of two aligned spans (ordered by
start time) are matched by name with a weighted longest common subsequence that
prefers content-identical pairs, so an inserted or dropped step does not shift
everything after it. Spans left over are then paired when they only moved (same
name, other position) or were renamed in place (same position, same kind); the
rest are added or removed, with their whole subtrees.
"""

from __future__ import annotations

import difflib
import html
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import polars as pl

CHANGES = ("added", "removed", "status_changed", "changed", "unchanged")
CHANGE = pl.Enum(CHANGES)

# Fields whose difference makes an aligned pair "changed" (status has its own category).
# Durations are reported as deltas but never count as a change: no two runs take equal time.
COMPARED_FIELDS = (
    "kind", "model", "tool_name", "tool_args", "tool_result", "input", "output",
    "tokens_in", "tokens_out", "tokens_total", "finish_reason", "status_message",
)

# Content that makes two same-named spans "the same step, unchanged" when aligning.
FINGERPRINT_FIELDS = ("tool_name", "tool_args", "tool_result", "output")
# Sibling lists longer than this (product of lengths) align by difflib instead.
MAX_ALIGNMENT_CELLS = 250_000

COMPARISON_SCHEMA: dict[str, pl.DataType] = {
    "path": pl.String(),
    "depth": pl.Int32(),
    "name": pl.String(),
    "kind": pl.String(),
    "change": CHANGE,
    "changed_fields": pl.List(pl.String()),
    "status_a": pl.String(),
    "status_b": pl.String(),
    "duration_ms_a": pl.Float64(),
    "duration_ms_b": pl.Float64(),
    "duration_delta_ms": pl.Float64(),
    "tokens_a": pl.Int64(),
    "tokens_b": pl.Int64(),
    "tokens_delta": pl.Int64(),
    "tool_args_a": pl.String(),
    "tool_args_b": pl.String(),
    "tool_result_a": pl.String(),
    "tool_result_b": pl.String(),
    "output_a": pl.String(),
    "output_b": pl.String(),
    "span_id_a": pl.String(),
    "span_id_b": pl.String(),
}


@dataclass(frozen=True)
class TraceComparison:
    """The result of ``compare_traces``: one row per aligned span pair, plus a summary."""

    trace_a: str
    trace_b: str
    frame: pl.DataFrame
    summary: dict[str, Any]

    def differences(self) -> pl.DataFrame:
        """Only the rows that are not ``unchanged``."""
        return self.frame.filter(pl.col("change") != "unchanged")

    def to_text(self) -> str:
        """A short human-readable report: the summary line and every difference."""
        s = self.summary
        lines = [
            f"A {self.trace_a} ({s['spans_a']} spans, {s['status_a']}, "
            f"{_ms(s['duration_ms_a'])}, {s['tokens_a']} tokens)",
            f"B {self.trace_b} ({s['spans_b']} spans, {s['status_b']}, "
            f"{_ms(s['duration_ms_b'])}, {s['tokens_b']} tokens)",
            ", ".join(f"{s[c]} {c.replace('_', ' ')}" for c in CHANGES),
        ]
        if s["identical"]:
            lines.append("the span trees match")
        else:
            lines.append(f"first difference at {s['first_difference']}")
        for row in self.differences().iter_rows(named=True):
            lines.append(_describe(row))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"TraceComparison({self.trace_a} vs {self.trace_b})\n{self.to_text()}"

    def _repr_html_(self) -> str:
        """In a notebook: the report, then the differing rows as a table."""
        report = f"<pre>{html.escape(self.to_text())}</pre>"
        differences = self.differences()
        return report + (differences._repr_html_() if differences.height else "")


def compare_traces(spans_a: pl.DataFrame, spans_b: pl.DataFrame) -> TraceComparison:
    """Align the span trees of two traces (each given as its span frame) and list what changed.

    The frame has one row per aligned pair in merged pre-order (a parent before its
    children): ``change`` is added, removed, status_changed, changed or unchanged and
    ``changed_fields`` names what differs (``order`` for a moved span, ``name`` for a
    renamed one). Tool arguments, tool results and outputs are filled only where they
    differ.
    """
    trace_a = _single_trace(spans_a, "A")
    trace_b = _single_trace(spans_b, "B")
    tree_a = _Tree(spans_a)
    tree_b = _Tree(spans_b)
    rows: list[dict[str, Any]] = []
    stack: list[tuple[str | None, str | None, frozenset[str], str, int]] = [
        (a, b, tags, "", 0) for a, b, tags in reversed(_align(tree_a.roots, tree_b.roots,
                                                              tree_a, tree_b))
    ]
    while stack:
        a_id, b_id, tags, parent_path, depth = stack.pop()
        a = tree_a.rows.get(a_id) if a_id else None
        b = tree_b.rows.get(b_id) if b_id else None
        name = (b or a)["name"]
        path = f"{parent_path}/{name}" if parent_path else name
        rows.append(_row(a, b, tags, path, depth))
        children = _align(tree_a.children(a_id), tree_b.children(b_id), tree_a, tree_b)
        stack.extend((ca, cb, ctags, path, depth + 1) for ca, cb, ctags in reversed(children))
    frame = pl.DataFrame(rows, schema=COMPARISON_SCHEMA)
    return TraceComparison(trace_a, trace_b, frame, _summary(trace_a, trace_b, tree_a, tree_b,
                                                             frame))


def _single_trace(spans: pl.DataFrame, label: str) -> str:
    if spans.height == 0:
        raise ValueError(f"trace {label}: no spans to compare")
    ids = spans.get_column("trace_id").unique().to_list()
    if len(ids) != 1:
        raise ValueError(
            f"trace {label}: the frame holds {len(ids)} traces; pass one trace's spans")
    return ids[0]


class _Tree:
    """Parent → children (ordered by start time) over one trace's spans."""

    def __init__(self, spans: pl.DataFrame) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        for row in spans.sort("start_ns", "end_ns", "span_id", nulls_last=True).iter_rows(
                named=True):
            self.rows.setdefault(row["span_id"], row)
        self._children: dict[str | None, list[str]] = defaultdict(list)
        for span_id, row in self.rows.items():
            parent = row["parent_span_id"]
            self._children[parent if parent in self.rows else None].append(span_id)
        self.roots = list(self._children[None])
        self._break_cycles()

    def _break_cycles(self) -> None:
        """Spans whose parents form a cycle hang off no root: cut each cycle at its
        earliest span, which becomes a root, so the rest keeps its shape."""
        seen: set[str] = set()
        pending = list(self.roots)
        while True:
            while pending:
                span_id = pending.pop()
                if span_id not in seen:
                    seen.add(span_id)
                    pending.extend(self._children.get(span_id, ()))
            cut = next((s for s in self.rows if s not in seen), None)
            if cut is None:
                return
            self._children[self.rows[cut]["parent_span_id"]].remove(cut)
            self.roots.append(cut)
            pending.append(cut)

    def children(self, span_id: str | None) -> list[str]:
        return self._children.get(span_id, []) if span_id else []


Pair = tuple[str | None, str | None, frozenset[str]]
Step = tuple[int | None, int | None]


def _align(a_ids: list[str], b_ids: list[str], tree_a: _Tree, tree_b: _Tree) -> list[Pair]:
    """Match two sibling lists (see ``_match_siblings``), then pair leftovers: a span whose
    name reappears elsewhere moved; a gap of equal length on both sides whose spans share
    their kinds was renamed in place; anything else was removed or added."""
    if not a_ids and not b_ids:
        return []
    a_rows = [tree_a.rows[i] for i in a_ids]
    b_rows = [tree_b.rows[j] for j in b_ids]
    steps = _match_siblings(a_rows, b_rows)

    waiting: dict[str, list[int]] = defaultdict(list)
    for i, j in steps:
        if j is None and i is not None:
            waiting[a_rows[i]["name"]].append(i)
    moved_to: dict[int, int] = {}
    for i, j in steps:
        if i is None and j is not None and waiting[b_rows[j]["name"]]:
            moved_to[j] = waiting[b_rows[j]["name"]].pop(0)
    moved_from = set(moved_to.values())

    out: list[Pair] = []
    gap_a: list[int] = []
    gap_b: list[int] = []

    def flush() -> None:
        rest_a = [i for i in gap_a if i not in moved_from]
        rest_b = [j for j in gap_b if j not in moved_to]
        renamed = _renamed_in_place([a_rows[i] for i in rest_a], [b_rows[j] for j in rest_b])
        if renamed:
            out.extend((a_ids[i], b_ids[j], frozenset({"name"}))
                       for i, j in zip(rest_a, rest_b, strict=True))
        else:
            out.extend((a_ids[i], None, frozenset()) for i in rest_a)
        for j in gap_b:
            if j in moved_to:
                out.append((a_ids[moved_to[j]], b_ids[j], frozenset({"order"})))
            elif not renamed:
                out.append((None, b_ids[j], frozenset()))
        gap_a.clear()
        gap_b.clear()

    for i, j in steps:
        if i is not None and j is not None:
            flush()
            out.append((a_ids[i], b_ids[j], frozenset()))
        elif i is not None:
            gap_a.append(i)
        elif j is not None:
            gap_b.append(j)
    flush()
    return out


def _match_siblings(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[Step]:
    """An alignment of two sibling lists as (index in a | None, index in b | None) steps.

    Spans match only by name. Among the alignments with the most matches, the one with
    the most content-identical pairs wins, and among those the earliest matches: so an
    extra loop iteration shows as added where it was added, and a step whose result
    changed stays paired with its counterpart. This is a weighted longest common
    subsequence (O(len(a) * len(b))); very long sibling lists fall back to difflib.
    """
    n, m = len(a), len(b)
    a_names = [r["name"] for r in a]
    b_names = [r["name"] for r in b]
    if n * m > MAX_ALIGNMENT_CELLS:
        return _difflib_steps(a_names, b_names)
    a_keys = [_fingerprint(r) for r in a]
    b_keys = [_fingerprint(r) for r in b]
    name_weight = min(n, m) + 1  # one more name match outweighs every content match
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = best[i], best[i + 1]
        for j in range(m - 1, -1, -1):
            value = max(below[j], row[j + 1])
            if a_names[i] == b_names[j]:
                value = max(value, name_weight + (a_keys[i] == b_keys[j]) + below[j + 1])
            row[j] = value
    steps: list[Step] = []
    i = j = 0
    while i < n and j < m:
        if a_names[i] == b_names[j] and best[i][j] == (
                name_weight + (a_keys[i] == b_keys[j]) + best[i + 1][j + 1]):
            steps.append((i, j))
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            steps.append((i, None))
            i += 1
        else:
            steps.append((None, j))
            j += 1
    steps.extend((k, None) for k in range(i, n))
    steps.extend((None, k) for k in range(j, m))
    return steps


def _difflib_steps(a_names: list[str], b_names: list[str]) -> list[Step]:
    steps: list[Step] = []
    matcher = difflib.SequenceMatcher(None, a_names, b_names, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            steps.extend((i1 + k, j1 + k) for k in range(i2 - i1))
        else:
            steps.extend((i, None) for i in range(i1, i2))
            steps.extend((None, j) for j in range(j1, j2))
    return steps


def _fingerprint(row: dict[str, Any]) -> tuple[Any, ...]:
    return (str(row["kind"]), str(row["status"]), *(row[f] for f in FINGERPRINT_FIELDS))


def _renamed_in_place(rest_a: list[dict[str, Any]], rest_b: list[dict[str, Any]]) -> bool:
    if not rest_a or len(rest_a) != len(rest_b):
        return False
    for a, b in zip(rest_a, rest_b, strict=True):
        kind = str(a["kind"])
        if kind == "unknown" or kind != str(b["kind"]):
            return False
    return True


def _row(a: dict[str, Any] | None, b: dict[str, Any] | None, tags: frozenset[str], path: str,
         depth: int) -> dict[str, Any]:
    if a is None or b is None:
        change = "added" if a is None else "removed"
        fields: list[str] = []
    else:
        fields = sorted(tags | {f for f in COMPARED_FIELDS if a[f] != b[f]})
        if a["status"] != b["status"]:
            change = "status_changed"
            fields = sorted({"status", *fields})
        else:
            change = "changed" if fields else "unchanged"
    ref = b or a
    assert ref is not None
    dur_a, dur_b = _get(a, "duration_ms"), _get(b, "duration_ms")
    tok_a, tok_b = _get(a, "tokens_total"), _get(b, "tokens_total")
    row = {
        "path": path,
        "depth": depth,
        "name": ref["name"],
        "kind": str(ref["kind"]),
        "change": change,
        "changed_fields": fields,
        "status_a": _get(a, "status"),
        "status_b": _get(b, "status"),
        "duration_ms_a": dur_a,
        "duration_ms_b": dur_b,
        "duration_delta_ms": None if dur_a is None or dur_b is None else dur_b - dur_a,
        "tokens_a": tok_a,
        "tokens_b": tok_b,
        "tokens_delta": None if tok_a is None and tok_b is None else (tok_b or 0) - (tok_a or 0),
        "span_id_a": _get(a, "span_id"),
        "span_id_b": _get(b, "span_id"),
    }
    for field in ("tool_args", "tool_result", "output"):
        differs = a is None or b is None or a[field] != b[field]
        row[f"{field}_a"] = _get(a, field) if differs else None
        row[f"{field}_b"] = _get(b, field) if differs else None
    return row


def _get(row: dict[str, Any] | None, key: str) -> Any:
    if row is None:
        return None
    value = row[key]
    return str(value) if key == "status" and value is not None else value


def _summary(trace_a: str, trace_b: str, tree_a: _Tree, tree_b: _Tree,
             frame: pl.DataFrame) -> dict[str, Any]:
    counts = dict.fromkeys(CHANGES, 0)
    for change, n in frame.group_by("change").len().iter_rows():
        counts[str(change)] = n
    differences = frame.filter(pl.col("change") != "unchanged")
    first = differences.row(0, named=True)["path"] if differences.height else None
    a, b = _totals(tree_a), _totals(tree_b)
    return {
        "trace_a": trace_a,
        "trace_b": trace_b,
        "name_a": a["name"],
        "name_b": b["name"],
        "spans_a": len(tree_a.rows),
        "spans_b": len(tree_b.rows),
        **counts,
        "identical": differences.height == 0,
        "first_difference": first,
        "status_a": a["status"],
        "status_b": b["status"],
        "duration_ms_a": a["duration_ms"],
        "duration_ms_b": b["duration_ms"],
        "duration_delta_ms": b["duration_ms"] - a["duration_ms"],
        "tokens_a": a["tokens"],
        "tokens_b": b["tokens"],
        "tokens_delta": b["tokens"] - a["tokens"],
    }


def _totals(tree: _Tree) -> dict[str, Any]:
    rows = list(tree.rows.values())
    starts = [r["start_ns"] for r in rows]
    ends = [r["end_ns"] or r["start_ns"] for r in rows]
    llm = [r["tokens_total"] or 0 for r in rows if str(r["kind"]) == "llm"]
    tokens = sum(llm) if any(llm) else sum(r["tokens_total"] or 0 for r in rows)
    root = tree.rows[tree.roots[0]]
    return {
        "name": root["name"],
        "status": "error" if any(str(r["status"]) == "error" for r in rows) else str(
            root["status"]),
        "duration_ms": (max(ends) - min(starts)) / 1e6,
        "tokens": tokens,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _describe(row: dict[str, Any]) -> str:
    change = row["change"]
    head = f"{change:>14}  {row['path']}"
    if change in ("added", "removed"):
        return head
    parts = [f"[{', '.join(row['changed_fields'])}]"]
    if row["status_a"] != row["status_b"]:
        parts.append(f"status {row['status_a']} -> {row['status_b']}")
    if row["tokens_delta"]:
        parts.append(f"tokens {row['tokens_delta']:+d}")
    for field in ("tool_args", "tool_result"):
        if field in row["changed_fields"]:
            parts.append(f"{field} {_clip(row[f'{field}_a'])} -> {_clip(row[f'{field}_b'])}")
    return f"{head}  {' '.join(parts)}"


def _clip(value: str | None, width: int = 60) -> str:
    if value is None:
        return "null"
    text = " ".join(value.split())
    return repr(text if len(text) <= width else text[: width - 1] + "…")
