"""Snapshots: export → import round trips, the payload as a plain OTLP request, selection,
atomic writes, and every kind of bad file failing cleanly with nothing half-imported."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import polars as pl
import pytest

from halo_nb.ingest.frame_builder import SpanFrameBuilder
from halo_nb.ingest.server import Collector
from halo_nb.interchange import snapshot
from halo_nb.interchange.snapshot import (
    SnapshotChecksumError,
    SnapshotCorruptError,
    SnapshotError,
    SnapshotFormatError,
    SnapshotTruncatedError,
    SnapshotVersionError,
    export_snapshot,
    import_snapshot,
)
from halo_nb.schema import SPAN_COLUMNS
from halo_nb.storage.store import SpanStore, UnknownTraceError

TRACE = "0af7651916cd43dd8448eb211c80319c"
OTHER = "4bf92f3577b34da6a3ce929d0e0e4736"


def exotic_frame() -> pl.DataFrame:
    """Spans with every value shape the frame can hold: nested maps, mixed arrays,
    non-finite and integral doubles, int64 extremes, null values, unicode, trace state,
    an unended span, events, two resources and two scopes."""
    b = SpanFrameBuilder()
    resource = {"service.name": "exotic", "host.cores": 2, "weight": 0.5}
    b.add(trace_id=TRACE, span_id="b7ad6b7169203331", parent_span_id=None, name="agent ✓",
          start_ns=1_700_000_000_123_456_789, end_ns=1_700_000_002_987_654_321,
          status_code=2, status_message="gave up",
          attributes={"openinference.span.kind": "AGENT", "int": 1, "float_one": 1.0,
                      "max": 2**63 - 1, "min": -(2**63), "neg_zero": -0.0, "empty": "",
                      "none": None, "flag": True, "nested": {"a": [1, "x", None, {"b": False}]},
                      "mixed": [1, 2.5, "three", [4]], "unicode": "héllo 世界 🚀",
                      "quote": 'say "hi"\n\ttab'},
          events=[{"name": "exception", "time_ns": 1_700_000_001_000_000_001,
                   "attributes": {"exception.type": "ValueError",
                                  "exception.message": "bad plan"}},
                  {"name": "note", "time_ns": 1_700_000_001_500_000_000, "attributes": {}}],
          links=[{"trace_id": OTHER, "span_id": "53995c3f42cd8ad8", "trace_state": "vendor=c",
                  "attributes": {"reason": "handoff", "n": 2}},
                 {"trace_id": OTHER, "span_id": "aaaaaaaaaaaaaaaa", "trace_state": "",
                  "attributes": {}}],
          resource=resource, otel_kind="server", trace_state="vendor=a,other=b",
          scope_name="agent-lib", scope_version="2.0")
    b.add(trace_id=TRACE, span_id="00f067aa0ba902b7", parent_span_id="b7ad6b7169203331",
          name="lookup", start_ns=1_700_000_000_200_000_000, end_ns=None, status_code=0,
          attributes={"openinference.span.kind": "TOOL", "tool.name": "lookup",
                      "input.value": '{"id": 7}'},
          events=[{"name": "exception", "time_ns": 1_700_000_000_300_000_000,
                   "attributes": {"exception.message": "derived message"}}],
          resource=resource, otel_kind="client", scope_name="tools")
    b.add(trace_id=OTHER, span_id="53995c3f42cd8ad8", parent_span_id="aaaaaaaaaaaaaaaa",
          name="orphan", start_ns=1_700_000_100_000_000_000, end_ns=1_700_000_100_000_000_001,
          status_code=1, status_message="fine",
          attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                      "gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 6},
          resource={"service.name": "other"}, otel_kind="internal")
    return b.build()


def assert_same_spans(expected: pl.DataFrame, actual: pl.DataFrame, origin: str | None) -> None:
    """Equal column by column (nulls, NaN text and nanoseconds included), origin apart."""
    key = ["trace_id", "span_id"]
    expected, actual = expected.sort(key), actual.sort(key)
    assert actual.height == expected.height
    for column in SPAN_COLUMNS:
        if column == "origin":
            continue
        assert actual[column].to_list() == expected[column].to_list(), column
    assert actual["origin"].to_list() == [origin] * actual.height


@pytest.fixture
def store(tmp_path: Path):
    s = SpanStore(tmp_path / "a")
    yield s
    s.close()


@pytest.fixture
def fresh_store(tmp_path: Path):
    s = SpanStore(tmp_path / "b")
    yield s
    s.close()


def test_spans_from_a_real_exporter_survive_export_and_import(
        store, fresh_store, tmp_path, send_agent_runs):
    with Collector(store, port=0) as collector:
        ids = send_agent_runs(collector.url, [{}, {"extra_search": True, "fail_search": True}])
    original = store.spans()
    assert original.height == 9 and set(original["trace_id"]) == set(ids)

    path = export_snapshot(store, None, tmp_path / "out" / "two-runs.json")
    result = import_snapshot(fresh_store, path)

    assert result.trace_ids == list(dict.fromkeys(original["trace_id"]))
    assert (result.spans_added, result.spans_already_present) == (9, 0)
    assert result.origin == "two-runs.json"
    imported = fresh_store.spans()
    assert_same_spans(original, imported, origin="two-runs.json")
    # Spot-check what equality covers: typed attributes, events, times to the nanosecond.
    search = imported.filter(pl.col("name") == "search_kb", pl.col("status") == "error").row(
        0, named=True)
    assert json.loads(search["attributes"])["tool.name"] == "search_kb"
    events = json.loads(search["events"])
    assert [e["name"] for e in events] == ["retrieved", "exception"]
    assert events[0]["attributes"] == {"count": 3, "ids": ["a1", "b2"], "score": 0.87}
    plan = json.loads(imported.filter(pl.col("name") == "plan")["attributes"][0])
    assert plan["llm.temperature"] == 0.2 and plan["llm.stop_ids"] == [7, 42]
    assert plan["llm.flags"] == [True, False] and plan["llm.streaming"] is False
    for column in ("start_ns", "end_ns"):
        assert dict(zip(original["span_id"], original[column], strict=True)) == dict(
            zip(imported["span_id"], imported[column], strict=True))
    # The trace list shows where imported traces came from.
    assert fresh_store.traces()["origin"].to_list() == ["two-runs.json"] * 2


def test_exotic_values_round_trip_exactly(store, fresh_store, tmp_path):
    frame = exotic_frame()
    store.append(frame)
    path = export_snapshot(store, None, tmp_path / "exotic.json")
    import_snapshot(fresh_store, path)
    imported = fresh_store.spans()
    assert_same_spans(frame, imported, origin="exotic.json")
    attrs = json.loads(imported.filter(pl.col("span_id") == "b7ad6b7169203331")["attributes"][0])
    assert type(attrs["int"]) is int and type(attrs["float_one"]) is float
    assert attrs["max"] == 2**63 - 1 and attrs["min"] == -(2**63)
    assert attrs["none"] is None and attrs["nested"] == {"a": [1, "x", None, {"b": False}]}
    # The file is strict JSON (no NaN literals) in the OTLP JSON mapping.
    envelope = json.loads(path.read_text(encoding="utf-8"), parse_constant=pytest.fail)
    spans = [s for rs in envelope["payload"]["resourceSpans"] for ss in rs["scopeSpans"]
             for s in ss["spans"]]
    root = next(s for s in spans if s["spanId"] == "b7ad6b7169203331")
    values = {kv["key"]: kv["value"] for kv in root["attributes"]}
    assert values["int"] == {"intValue": "1"} and values["float_one"] == {"doubleValue": 1.0}
    assert values["none"] == {} and values["neg_zero"] == {"doubleValue": -0.0}
    assert values["nested"]["kvlistValue"]["values"][0]["key"] == "a"
    assert root["startTimeUnixNano"] == "1700000000123456789"
    assert root["kind"] == 2 and root["status"] == {"code": 2, "message": "gave up"}
    assert root["traceState"] == "vendor=a,other=b"
    assert root["links"] == [
        {"traceId": OTHER, "spanId": "53995c3f42cd8ad8", "traceState": "vendor=c",
         "attributes": [{"key": "reason", "value": {"stringValue": "handoff"}},
                        {"key": "n", "value": {"intValue": "2"}}]},
        {"traceId": OTHER, "spanId": "aaaaaaaaaaaaaaaa"}]
    lookup = next(s for s in spans if s["spanId"] == "00f067aa0ba902b7")
    # An unended span stays unended; a message derived from an exception is not invented.
    assert "endTimeUnixNano" not in lookup and lookup["status"] == {}
    assert len(envelope["payload"]["resourceSpans"]) == 2


def test_envelope_describes_the_payload(store, tmp_path):
    store.append(exotic_frame())
    path = export_snapshot(store, [OTHER, TRACE], tmp_path / "s.json")
    envelope = json.loads(path.read_text(encoding="utf-8"))
    assert envelope["format"] == "halo_nb.snapshot" and envelope["version"] == 1
    assert envelope["halo_nb_version"] == __import__("halo_nb").__version__
    assert envelope["created_at"].endswith("Z")
    assert envelope["trace_ids"] == [OTHER, TRACE]
    assert envelope["span_count"] == 3
    assert envelope["checksum"] == snapshot.checksum(envelope["payload"])
    assert list(envelope)[-1] == "payload"
    # The header is readable line by line, the payload compact on one line.
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[1] == ' "format": "halo_nb.snapshot",' and len(lines) == len(envelope) + 2


def test_payload_posted_as_is_to_the_collector_reproduces_the_spans(
        store, fresh_store, tmp_path, send_agent_runs):
    with Collector(store, port=0) as collector:
        send_agent_runs(collector.url, [{"fail_search": True}])
    store.append(exotic_frame())
    path = export_snapshot(store, None, tmp_path / "s.json")
    payload = json.loads(path.read_text(encoding="utf-8"))["payload"]

    with Collector(fresh_store, port=0) as collector:
        request = urllib.request.Request(
            collector.traces_url, data=json.dumps(payload).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            assert json.loads(response.read()) == {}
    assert_same_spans(store.spans(), fresh_store.spans(), origin=None)


def test_importing_twice_changes_nothing(store, fresh_store, tmp_path):
    store.append(exotic_frame())
    path = export_snapshot(store, None, tmp_path / "s.json")
    first = import_snapshot(fresh_store, path)
    before, version = fresh_store.spans(), fresh_store.version
    second = import_snapshot(fresh_store, path)
    assert (first.spans_added, first.spans_already_present) == (3, 0)
    assert (second.spans_added, second.spans_already_present) == (0, 3)
    assert fresh_store.version == version
    assert fresh_store.spans().equals(before)


def test_import_into_a_store_holding_the_originals_keeps_them(store, tmp_path):
    store.append(exotic_frame())
    path = export_snapshot(store, None, tmp_path / "s.json")
    result = import_snapshot(store, path)
    assert (result.spans_added, result.spans_already_present) == (0, 3)
    assert store.spans()["origin"].null_count() == 3


def test_selection_by_ids_and_by_polars_expressions(store, tmp_path, send_agent_runs):
    with Collector(store, port=0) as collector:
        ok, failed = send_agent_runs(collector.url, [{}, {"fail_search": True}])

    def exported(traces):
        path = export_snapshot(store, traces, tmp_path / "sel.json")
        return json.loads(path.read_text(encoding="utf-8"))["trace_ids"]

    assert exported(ok) == [ok]
    assert exported([failed, ok, failed]) == [failed, ok]
    assert exported(pl.col("status") == "error") == [failed]  # the trace table
    assert exported(pl.col("error_count") == 0) == [ok]  # a trace-table-only column
    assert exported(store.traces().filter(pl.col("status") == "error")) == [failed]
    assert sorted(exported(pl.col("tool_result").str.contains("3 articles"))) == sorted(
        [ok, failed])
    # A span-frame filter still exports whole traces.
    path = export_snapshot(store, pl.col("kind") == "tool", tmp_path / "tools.json")
    assert json.loads(path.read_text(encoding="utf-8"))["span_count"] == 8


def test_selection_errors_name_the_problem(store, tmp_path):
    store.append(exotic_frame())
    with pytest.raises(UnknownTraceError, match="unknown trace ids: f+, e+"):
        export_snapshot(store, [TRACE, "f" * 32, "e" * 32], tmp_path / "x.json")
    with pytest.raises(SnapshotError, match="matched no traces"):
        export_snapshot(store, pl.col("name") == "nothing", tmp_path / "x.json")
    with pytest.raises(SnapshotError, match="unknown column.*no_such"):
        export_snapshot(store, pl.col("no_such") == 1, tmp_path / "x.json")
    with pytest.raises(TypeError, match="trace ids must be strings"):
        export_snapshot(store, [1], tmp_path / "x.json")
    with pytest.raises(SnapshotError, match="nothing to export"):
        export_snapshot(SpanStore(None), None, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_a_failed_export_leaves_the_previous_file_whole(store, tmp_path, monkeypatch):
    store.append(exotic_frame())
    path = export_snapshot(store, [TRACE], tmp_path / "snaps" / "s.json")
    before = path.read_bytes()

    def broken(envelope):
        raise OSError("disk full")

    monkeypatch.setattr(snapshot, "_envelope_text", broken)
    with pytest.raises(OSError, match="disk full"):
        export_snapshot(store, None, path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["s.json"]


def test_findings_travel_with_the_snapshot_when_asked(store, fresh_store, tmp_path):
    store.append(exotic_frame())
    path = export_snapshot(store, [TRACE], tmp_path / "f.json", with_findings=True)
    envelope = json.loads(path.read_text(encoding="utf-8"))
    findings = envelope["findings"]
    assert envelope["findings_checksum"] == snapshot.checksum(findings)
    assert {f["trace_id"] for f in findings} == {TRACE}
    assert ("never_ended", "00f067aa0ba902b7") in {(f["detector"], f["span_id"])
                                                   for f in findings}
    result = import_snapshot(fresh_store, path)
    assert result.findings is not None
    assert result.findings.to_dicts() == findings
    plain = import_snapshot(fresh_store, export_snapshot(store, None, tmp_path / "p.json"))
    assert plain.findings is None


# ---- bad files -------------------------------------------------------------------------------


def _rewrite(path: Path, change) -> None:
    envelope = json.loads(path.read_text(encoding="utf-8"))
    change(envelope)
    path.write_text(json.dumps(envelope), encoding="utf-8")


def _resign(envelope) -> None:
    envelope["checksum"] = snapshot.checksum(envelope["payload"])


def _first_span(envelope):
    return envelope["payload"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]


def _bad_span_id(envelope):
    _first_span(envelope)["spanId"] = "xyz"
    _resign(envelope)


def _wrong_count(envelope):
    envelope["span_count"] = 2
    _resign(envelope)


def _tamper(envelope):
    _first_span(envelope)["name"] = "renamed"


def _tamper_findings(envelope):
    envelope["findings"] = [{"detector": "x"}]
    envelope["findings_checksum"] = "sha256:0"


BAD_FILES = {
    "empty": (lambda p: p.write_bytes(b""), SnapshotTruncatedError, "empty"),
    "cut in half": (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
                    SnapshotTruncatedError, "ends before"),
    "last byte missing": (lambda p: p.write_bytes(p.read_bytes().rstrip()[:-1]),
                          SnapshotTruncatedError, "ends before"),
    "cut inside a number": (lambda p: p.write_bytes(p.read_bytes().split(b'"span_count": ')[0]
                                                    + b'"span_count": 1'),
                            SnapshotTruncatedError, "ends before"),
    "cut inside a multibyte character": (
        lambda p: p.write_bytes(p.read_bytes()[: p.read_bytes().index("✓".encode()) + 1]),
        SnapshotTruncatedError, "ends before"),
    "not JSON": (lambda p: p.write_bytes(p.read_bytes().replace(b'"version": 1,',
                                                                b'"version": 1,,')),
                 SnapshotCorruptError, "not valid JSON"),
    "binary garbage": (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff"),
                       SnapshotCorruptError, "not UTF-8"),
    "another JSON document": (lambda p: p.write_text('{"hello": "world"}'),
                              SnapshotFormatError, "no 'format' field"),
    "a bare OTLP request": (lambda p: p.write_text('{"resourceSpans": []}'),
                            SnapshotFormatError, "bare OTLP JSON request"),
    "another format": (lambda p: _rewrite(p, lambda e: e.update(format="jaeger.export")),
                       SnapshotFormatError, "jaeger.export"),
    "a newer version": (lambda p: _rewrite(p, lambda e: e.update(version=2)),
                        SnapshotVersionError, "version 2 is not supported.*upgrade"),
    "a version that is not a number": (lambda p: _rewrite(p, lambda e: e.update(version="1")),
                                       SnapshotVersionError, "version '1'"),
    "a missing field": (lambda p: _rewrite(p, lambda e: e.pop("checksum")),
                        SnapshotCorruptError, "missing field.*checksum"),
    "an altered payload": (lambda p: _rewrite(p, _tamper), SnapshotChecksumError,
                           "checksum mismatch"),
    "altered findings": (lambda p: _rewrite(p, _tamper_findings), SnapshotChecksumError,
                         "findings checksum"),
    "an invalid span (re-signed)": (lambda p: _rewrite(p, _bad_span_id), SnapshotCorruptError,
                                    "1 span.*invalid.*spanId"),
    "a wrong span count (re-signed)": (lambda p: _rewrite(p, _wrong_count),
                                       SnapshotCorruptError, "says 2 spans.*holds 3"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_is_named_and_imports_nothing(case, store, fresh_store, tmp_path):
    damage, error, message = BAD_FILES[case]
    store.append(exotic_frame())
    path = export_snapshot(store, None, tmp_path / "bad.json")
    damage(path)
    keep = SpanFrameBuilder()
    keep.add(trace_id="1" * 32, span_id="2" * 16, parent_span_id=None, name="kept",
             start_ns=1, end_ns=2)
    fresh_store.append(keep.build())
    before, version = fresh_store.spans(), fresh_store.version

    with pytest.raises(error, match=message):
        import_snapshot(fresh_store, path)
    assert fresh_store.version == version
    assert fresh_store.spans().equals(before)
    assert fresh_store.trace_ids() == ["1" * 32]


def test_every_snapshot_error_is_a_value_error_naming_the_file(tmp_path, fresh_store):
    path = tmp_path / "named.json"
    path.write_text("[]")
    with pytest.raises(SnapshotFormatError) as info:
        import_snapshot(fresh_store, path)
    assert isinstance(info.value, ValueError) and str(path) in str(info.value)
    with pytest.raises(FileNotFoundError):
        import_snapshot(fresh_store, tmp_path / "missing.json")


# ---- the checksum is over RFC 8785 canonical JSON, not one library's spelling --------------

def _respell_numbers(text: str) -> str:
    """Every JSON number as another serialiser might write it: floats with 17 significant
    digits in exponent form (``1e+20`` as ``1.00000000000000000e+20``)."""
    import re

    def respell(match: re.Match[str]) -> str:
        token = match.group(0)
        return f"{float(token):.17e}" if any(c in token for c in ".eE") else token

    return re.sub(r"(?<![\w\"])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w\"])", respell, text)


def test_a_snapshot_verifies_after_another_serialiser_rewrites_it(store, fresh_store, tmp_path):
    frame = exotic_frame()
    b = SpanFrameBuilder()
    b.add(trace_id=OTHER, span_id="1111111111111111", parent_span_id=None, name="numbers",
          start_ns=1_700_000_000_000_000_000, end_ns=1_700_000_001_000_000_000, status_code=1,
          attributes={"big": 1e20, "tiny": 1e-7, "third": 1 / 3, "huge": 1.7976931348623157e308,
                      "cents": 0.1, "whole": 100.0, "exp16": 1e16})
    store.append(pl.concat([frame, b.build()]))
    path = export_snapshot(store, None, tmp_path / "numbers.json")
    assert json.loads(path.read_text())["checksum"].startswith("jcs-sha256:")
    envelope = json.loads(path.read_text(encoding="utf-8"))
    # Pretty-printed, keys in reverse order, every float spelled differently.
    def reverse_keys(value):
        if isinstance(value, dict):
            return {k: reverse_keys(value[k]) for k in sorted(value, reverse=True)}
        if isinstance(value, list):
            return [reverse_keys(v) for v in value]
        return value
    rewritten = _respell_numbers(json.dumps(reverse_keys(envelope), indent=2, ensure_ascii=True))
    assert "1.00000000000000000e+20" in rewritten
    other = tmp_path / "rewritten.json"
    other.write_text(rewritten, encoding="utf-8")
    import_snapshot(fresh_store, other)
    numbers = fresh_store.spans().filter(pl.col("span_id") == "1111111111111111")
    attrs = json.loads(numbers["attributes"][0])
    assert attrs == {"big": 1e20, "tiny": 1e-7, "third": 1 / 3, "huge": 1.7976931348623157e308,
                     "cents": 0.1, "whole": 100.0, "exp16": 1e16}
    # Both decoders spell a float as repr() does, whatever JSON library is installed.
    assert '"big":1e+20' in numbers["attributes"][0]
    assert '"tiny":1e-07' in numbers["attributes"][0]
    assert '"whole":100.0' in numbers["attributes"][0]


def test_a_changed_value_still_fails_the_canonical_checksum(store, tmp_path):
    store.append(exotic_frame())
    path = export_snapshot(store, None, tmp_path / "a.json")
    envelope = json.loads(path.read_text(encoding="utf-8"))
    _first_span(envelope)["name"] = "renamed"
    path.write_text(json.dumps(envelope, indent=2), encoding="utf-8")
    with pytest.raises(SnapshotChecksumError, match="altered"):
        snapshot.read_snapshot(path)


def test_snapshots_with_the_earlier_sha256_checksum_still_verify(store, fresh_store, tmp_path):
    import hashlib

    store.append(exotic_frame())
    path = export_snapshot(store, None, tmp_path / "legacy.json")
    envelope = json.loads(path.read_text(encoding="utf-8"))
    compact = json.dumps(envelope["payload"], sort_keys=True, separators=(",", ":"),
                         ensure_ascii=False).encode()
    envelope["checksum"] = "sha256:" + hashlib.sha256(compact).hexdigest()
    path.write_text(json.dumps(envelope), encoding="utf-8")
    import_snapshot(fresh_store, path)
    assert len(fresh_store) == len(exotic_frame())
