"""Recovered trouble on runs of agents that record no LLM spans (a multi-agent conversation
exported one span per message: agents' steps and a code runner's runs): an error, a
re-run or failure words the run got past are low; when the run did not get past them,
or the caller says it failed, they stay medium or high. What a healthy run of such a
team looks like must not read as a failure."""

from __future__ import annotations

from otlp_factory import NOW_NS, new_trace_id, protobuf_body, span

from halo_nb.config import Settings
from halo_nb.ingest.otlp import decode_protobuf
from halo_nb.rlm import analyze_frame

SECOND = 10**9
QUESTION = "How many rows of data.csv have a price above 100?"


def conversation(steps: list[tuple[str, str, bool]], answer: str = "There are 42 such rows."
                 ) -> tuple[str, list[dict]]:
    """A root agent span and one span per message: (speaker, text, failed); the speaker
    "terminal" is the code runner (a tool span, ERROR when failed)."""
    trace_id = new_trace_id()
    root = span("invoke_agent team", trace_id=trace_id, duration_ns=(len(steps) + 1) * SECOND,
                attrs={"openinference.span.kind": "AGENT", "input.value": QUESTION,
                       "output.value": answer})
    spans = [root]
    for i, (speaker, text, failed) in enumerate(steps):
        tool = speaker == "terminal"
        spans.append(span(("execute_tool " if tool else "agent_step ") + speaker,
                          trace_id=trace_id, parent=root["span_id"],
                          start_ns=NOW_NS + (i + 1) * SECOND, duration_ns=SECOND,
                          kind=3 if tool else 1, status=2 if failed else 0,
                          attrs={"openinference.span.kind": "TOOL" if tool else "AGENT",
                                 "gen_ai.agent.name": speaker, "output.value": text}))
    return trace_id, spans


def findings(spans: list[dict], outcomes: dict[str, str] | None = None) -> dict[str, set[str]]:
    """detector -> the severities it reported."""
    frame = decode_protobuf(protobuf_body(spans)).frame
    result = analyze_frame(frame, Settings(model="none"), outcomes=outcomes)
    out: dict[str, set[str]] = {}
    for row in result.findings.iter_rows(named=True):
        out.setdefault(row["detector"], set()).add(row["severity"])
    return out


FIXED_ON_SECOND_TRY = [
    ("planner", "Load data.csv and count the rows with price > 100.", False),
    ("coder", "```python\nimport pandas as pd\nprint((pd.read_csv('data.csv').price > 100)"
              ".sum())\n```", False),
    ("terminal", "exitcode: 1\nTraceback: KeyError: 'price'", True),
    ("coder", "The column failed to load under that name; it is 'Price'. Let me rerun.", False),
    ("terminal", "exitcode: 0\n42", False),
    ("checker", "42 rows; the count is verified.", False),
]


def test_an_error_the_team_fixed_is_low_in_a_run_that_answered() -> None:
    _, spans = conversation(FIXED_ON_SECOND_TRY)
    found = findings(spans)
    assert found["error_status"] == {"low"}
    assert found["retry_loop"] == {"low"}  # ran again: the code was not recorded
    assert found["failure_words"] == {"low"}  # "failed to" in an agent's own words
    assert not any({"medium", "high"} & severities for severities in found.values())


def test_the_same_run_said_to_have_failed_keeps_its_trouble_high() -> None:
    trace_id, spans = conversation(FIXED_ON_SECOND_TRY)
    found = findings(spans, outcomes={trace_id: "failed"})
    assert found["error_status"] == {"high"} and found["retry_loop"] == {"medium"}
    assert found["failure_words"] == {"medium"}


def test_a_run_that_ends_on_a_failed_run_of_the_code_is_not_recovered() -> None:
    _, spans = conversation(FIXED_ON_SECOND_TRY[:3], answer="exitcode: 1")
    assert findings(spans)["error_status"] == {"high"}


def test_a_code_runner_running_new_code_each_time_is_not_a_loop() -> None:
    steps = [step for n in range(6) for step in (
        ("coder", f"Step {n}: compute part {n}.", False),
        ("terminal", f"exitcode: 0\npart {n} = {n * 17}", False))]
    assert "agent_loop" not in findings(conversation(steps)[1])


def test_a_code_runner_getting_the_same_answer_back_is_a_loop() -> None:
    steps = [step for n in range(6) for step in (
        ("coder", f"Attempt {n}: try again.", False),
        ("terminal", "exitcode: 0\nNo module named data_loader", False))]
    assert findings(conversation(steps)[1])["agent_loop"] == {"medium"}
