"""A trace's outcome as the engine sees it: failed, succeeded or unknown, and where
that came from. The first source that speaks wins:

1. ``user``: the outcome the caller passed for the trace (``analyze(outcomes=...)``).
2. ``annotation``: ``annotate(outcome="failure" | "success")`` on any span (the
   ``halo.annotation.outcome`` attribute; also ``success`` / ``passed`` / ``correct``
   as booleans); the root's annotation wins over others, then the latest.
3. ``score``: an eval score or a reward annotation (``halo.annotation.score``,
   ``.reward``, ``.eval_score``): below 0.5 failed, else succeeded.
4. ``status``: the root span's status is ERROR.
5. ``evidence``: the engine's own: the root is missing or never ended; the root's
   output reports a failure, gives up or says nothing was found; the last tool run
   failed and nothing came after it; the framework's last self-assessment says the
   run is stuck.
6. ``status``: the root span's status is OK (succeeded).

Otherwise the outcome is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from .graph import SpanNode, TraceView
from .signals import GIVES_UP, STALLED, span_text
from .text import acknowledges_absence, failure_terms

FAILED, SUCCEEDED, UNKNOWN = "failed", "succeeded", "unknown"
OUTCOMES = (FAILED, SUCCEEDED, UNKNOWN)
ANNOTATION_PREFIX = "halo.annotation."
_VERDICT_KEYS = ("outcome", "success", "passed", "correct", "resolved")
_SCORE_KEYS = ("score", "reward", "eval_score")
_FAILED_WORDS = frozenset({"failed", "failure", "fail", "error", "incorrect", "wrong", "false",
                           "bad", "no", "0", "unresolved"})
_SUCCEEDED_WORDS = frozenset({"succeeded", "success", "succeed", "pass", "passed", "ok",
                              "correct", "true", "good", "yes", "1", "resolved"})
SCORE_PASS = 0.5


@dataclass(frozen=True)
class Outcome:
    outcome: str  # one of OUTCOMES
    source: str   # user, annotation, score, status, evidence or none
    detail: str

    @property
    def told(self) -> bool:
        """Someone said how the run ended (the caller, an annotation, an eval score)."""
        return self.source in ("user", "annotation", "score")


def outcome_word(value: Any) -> str | None:
    """``value`` read as an outcome (FAILED / SUCCEEDED), None when it is not one."""
    if isinstance(value, bool):
        return SUCCEEDED if value else FAILED
    word = str(value).strip().lower()
    if word in _FAILED_WORDS:
        return FAILED
    if word in _SUCCEEDED_WORDS:
        return SUCCEEDED
    return None


def annotated_traces(spans: pl.DataFrame) -> set[str]:
    """Ids of the traces with any annotation (a vectorised prefilter: only these are
    searched for outcome annotations)."""
    if spans.is_empty() or "attributes" not in spans.columns:
        return set()
    hit = spans.filter(pl.col("attributes").str.contains(ANNOTATION_PREFIX, literal=True))
    return set(hit["trace_id"].unique().to_list())


def trace_outcome(trace: TraceView, given: str | None = None, annotated: bool = True) -> Outcome:
    """The outcome of one trace (see the module docstring for the order of sources)."""
    if given is not None:
        word = outcome_word(given)
        if word is None:
            raise ValueError(f"outcome for trace {trace.trace_id}: {given!r} is not "
                             "failed/failure or succeeded/success")
        return Outcome(word, "user", f"given by the caller: {given}")
    if annotated:
        found = _annotation(trace)
        if found is not None:
            return found
    root = trace.root
    if root is not None and root.status == "error":
        return Outcome(FAILED, "status", f"the root span failed: {root.status_message or 'ERROR'}")
    evidence = failure_evidence(trace)
    if evidence is not None:
        return Outcome(FAILED, "evidence", evidence)
    if root is not None and root.status == "ok":
        return Outcome(SUCCEEDED, "status", "the root span ended OK")
    return Outcome(UNKNOWN, "none", "no annotation, status or evidence")


def failure_evidence(trace: TraceView) -> str | None:
    """Why the engine itself thinks the run failed, or None."""
    root = trace.root
    if root is None:
        return "the trace has no single root span"
    if not root.ended:
        return "the root span never ended"
    output = root.output or ""
    terms = failure_terms(output)
    if terms:
        return f"the final output reports a failure ({', '.join(terms)})"
    if acknowledges_absence(output) or GIVES_UP.search(output[:2000]):
        return "the final output gives up or says nothing was found"
    steps = [s for s in trace.spans if s is not root]
    if steps and steps[-1].kind == "tool" and steps[-1].failed:
        return f"the last step, tool run {steps[-1].name}, failed and nothing came after it"
    assessments = [s for s in steps if STALLED.search(span_text(s))]
    if assessments and assessments[-1] is _last_assessment(steps):
        return ("the framework's last self-assessment says the run is stuck "
                f"({assessments[-1].name})")
    return None


def _last_assessment(steps: list[SpanNode]) -> SpanNode | None:
    """The last step that carries a progress self-assessment (stuck or not)."""
    for s in reversed(steps):
        if "is_progress_being_made" in span_text(s):
            return s
    return None


def _annotation(trace: TraceView) -> Outcome | None:
    root = trace.root
    candidates = sorted(trace.spans, key=lambda s: (s is root, s.end_ns or 0), reverse=True)
    for span in candidates:
        if not span.attributes or ANNOTATION_PREFIX not in span.attributes:
            continue
        attrs = span.attrs
        for key in _VERDICT_KEYS:
            value = attrs.get(ANNOTATION_PREFIX + key)
            word = None if value is None else outcome_word(value)
            if word is not None:
                return Outcome(word, "annotation", f"{key}={value} on {span.name}")
        for key in _SCORE_KEYS:
            value = attrs.get(ANNOTATION_PREFIX + key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                word = SUCCEEDED if value >= SCORE_PASS else FAILED
                return Outcome(word, "score", f"{key}={value} on {span.name}")
    return None
