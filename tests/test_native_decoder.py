"""Differential test: the native OTLP decoder (``halo_nb.ingest._wire``) against the reference.

The native decoder re-implements the protobuf walk *and* the semconv normalisation of
``SpanFrameBuilder`` in C for speed. The pure-Python ``decode_protobuf_reference`` stays
the single definition of what a request decodes to, so every case here is decoded twice
and the results must be identical: same frame (values and dtypes), same rejected count,
same errors, or the same exception type and message. Seeded generators keep it reproducible.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from otlp_factory import Pairs, set_value
from polars.testing import assert_frame_equal

from halo_nb.ingest import rules
from halo_nb.ingest.otlp import (
    DecodeResult,
    decode_native,
    decode_protobuf,
    decode_protobuf_reference,
)


def _benchmark_workload() -> Any:
    """benchmarks/workload.py, loaded by path: putting benchmarks/ on sys.path would let
    its scripts shadow real packages (a script named like a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "workload.py"
    spec = importlib.util.spec_from_file_location("halo_benchmark_workload", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


request_bodies = _benchmark_workload().request_bodies

RANDOM_REQUESTS = 300
FLOAT_SAMPLES = 20_000

TEXTS = ("", "plain", "café", "中文", "🙂 emoji", "tab\tnew\nline", "\x00\x01\x1f", '"quoted"',
         "back\\slash", "line\u2028sep", "del\x7f", "é中🙂\\\"\x1b")
EDGE_DOUBLES = (0.0, -0.0, 0.2, 1e20, 1e-5, 1.5e-05, 3.3e-7, 1e16, 1e15, 1.7976931348623157e308,
                5e-324, 2.2250738585072014e-308, 123456789.125, -1.0, 0.1 + 0.2, 1e22, 1e21,
                9007199254740993.0, math.nan, math.inf, -math.inf)
EDGE_INTS = (0, 1, -1, 12, 2**31, -(2**31), 2**53 + 1, 2**63 - 1, -(2**63))
SEMCONV_KEYS = (rules.MODEL + rules.TOKENS_IN + rules.TOKENS_OUT + rules.TOKENS_TOTAL
                + rules.TOOL_NAME + rules.TOOL_ARGS + rules.TOOL_RESULT + rules.INPUT
                + rules.OUTPUT + rules.FINISH_REASON)
KIND_VALUES = ("LLM", "llm", "Tool", "agent", "chain", "retriever", "bogus", "", "CHAT", "chat",
               "execute_tool", "invoke_agent", "embeddings", "workflow", "task", "unknown")

Outcome = DecodeResult | tuple[type, str]


# ---- values ---------------------------------------------------------------------------------


def random_double(rng: random.Random) -> float:
    if rng.random() < 0.5:
        return rng.choice(EDGE_DOUBLES)
    return struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """Any AnyValue, nested at most two levels."""
    choice = rng.randrange(9 if depth < 2 else 6)
    if choice == 0:
        return rng.choice(TEXTS)
    if choice == 1:
        return rng.random() < 0.5
    if choice == 2:
        return rng.choice(EDGE_INTS) if rng.random() < 0.5 else rng.randrange(-10**6, 10**6)
    if choice == 3:
        return random_double(rng)
    if choice == 4:
        return rng.randbytes(rng.randrange(0, 12))
    if choice == 5:
        return None
    if choice == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    keys = ("a", "b", "a", "é", "")
    return Pairs((rng.choice(keys), random_value(rng, depth + 1)) for _ in range(rng.randrange(4)))


def semconv_value(rng: random.Random, key: str) -> Any:
    """A value for a semconv key, from the spellings agents really send and the odd ones."""
    if key in rules.TOKENS_IN + rules.TOKENS_OUT + rules.TOKENS_TOTAL:
        return rng.choice((rng.randrange(0, 10**6), 0, -3, True, False, "12", " 7 ", "x", 1.5,
                           2.9, -0.0, math.nan, math.inf, 1e20, "99999999999999999999", None,
                           [1, 2], Pairs((("a", 1),))))
    if key in rules.FINISH_REASON:
        return rng.choice(("stop", ["length", "stop"], [], 3, [7], [None], 1.5))
    if key in rules.MODEL + rules.TOOL_NAME:
        return rng.choice(("gpt-4o", "claude-3", "", "é中", 7, True, None))
    return rng.choice((rng.choice(TEXTS), '{"q": "flights"}', 42, 0.5, math.nan, math.inf,
                       ["x", 1, None], Pairs((("k", "v"), ("k", 2))), b"\x00\xff", True))


def add_attrs(target: Any, items: list[tuple[str, Any]]) -> None:
    for key, value in items:
        kv: KeyValue = target.add(key=key)
        set_value(kv.value, value)


def random_span_attrs(rng: random.Random) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    kind_key = rng.choice((rules.OPENINFERENCE_KIND, rules.GENAI_OPERATION,
                           rules.TRACELOOP_KIND, rules.HALO_KIND, None))
    if kind_key:
        items.append((kind_key, rng.choice(KIND_VALUES + (3, True, None, ["llm"]))))
    for key in rng.sample(SEMCONV_KEYS, rng.randrange(0, 8)):
        items.append((key, semconv_value(rng, key)))
    for n in range(rng.randrange(0, 5)):
        items.append((f"custom.{n}", random_value(rng)))
    if items and rng.random() < 0.3:  # duplicate key: first position, last value
        items.append((rng.choice(items)[0], random_value(rng)))
    rng.shuffle(items)
    return items


# ---- requests -------------------------------------------------------------------------------


def random_ids(rng: random.Random) -> tuple[bytes, bytes]:
    return rng.getrandbits(128).to_bytes(16, "big"), rng.getrandbits(64).to_bytes(8, "big")


def fill_span(span: Span, rng: random.Random, trace_id: bytes, parent: bytes | None) -> None:
    span.trace_id, span.span_id = trace_id, rng.getrandbits(64).to_bytes(8, "big")
    if parent:
        span.parent_span_id = parent
    span.name = rng.choice(TEXTS)
    span.kind = rng.choice((0, 1, 2, 3, 4, 5, 9))
    span.start_time_unix_nano = rng.choice((0, 1, 1_700_000_000_000_000_000))
    span.end_time_unix_nano = rng.choice((0, span.start_time_unix_nano + rng.randrange(10**9)))
    span.status.code = rng.choice((0, 1, 2))
    if rng.random() < 0.5:
        span.status.message = rng.choice(TEXTS)
    if rng.random() < 0.3:
        span.trace_state = "vendor=1"
    add_attrs(span.attributes, random_span_attrs(rng))
    for _ in range(rng.randrange(0, 3)):
        event = span.events.add(name=rng.choice(("exception", "log", "")),
                                time_unix_nano=rng.randrange(2**40))
        add_attrs(event.attributes, [
            ("exception.message", rng.choice(("boom", 3, None, ["x"], math.nan))),
            ("exception.type", rng.choice(("ValueError", 1.5, None))),
            ("extra", random_value(rng)),
        ][: rng.randrange(4)])
    for _ in range(rng.randrange(0, 2)):
        link = span.links.add(trace_id=random_ids(rng)[0], span_id=random_ids(rng)[1],
                              trace_state=rng.choice(("", "a=b")))
        add_attrs(link.attributes, [("link.kind", random_value(rng))])


def random_request(seed: int) -> bytes:
    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    for _ in range(rng.randrange(1, 4)):
        resource_spans = request.resource_spans.add()
        service = rng.choice(("agent", "é-service", "", 7, None, ["a"]))
        resource = [("service.name", service)] if rng.random() < 0.7 else []
        add_attrs(resource_spans.resource.attributes, resource + [("host", random_value(rng))])
        for _ in range(rng.randrange(0, 3)):
            scope_spans = resource_spans.scope_spans.add()
            if rng.random() < 0.7:
                scope_spans.scope.name = rng.choice(("openinference", "", "é"))
                scope_spans.scope.version = rng.choice(("1.0", ""))
            trace_id, root = random_ids(rng)
            for n in range(rng.randrange(0, 6)):
                fill_span(scope_spans.spans.add(), rng, trace_id, root if n else None)
    return request.SerializeToString()


def single_span_request(configure: Callable[[Span], None]) -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(
        trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), name="s",
        start_time_unix_nano=1_000, end_time_unix_nano=2_000)
    configure(span)
    return request.SerializeToString()


# ---- comparison -----------------------------------------------------------------------------


def outcome(decode: Callable[[bytes], DecodeResult | None], body: bytes) -> Outcome | None:
    try:
        return decode(body)
    except Exception as exc:  # the reference's exception is part of its behaviour
        return type(exc), str(exc)


def assert_same(got: Outcome | None, expected: Outcome | None, label: str) -> None:
    if isinstance(expected, DecodeResult):
        assert isinstance(got, DecodeResult), f"{label}: reference decoded, native gave {got!r}"
        assert_frame_equal(got.frame, expected.frame, check_dtypes=True)
        assert (got.rejected, got.errors) == (expected.rejected, expected.errors), label
        # The duplicate keys and trace ids the native decoder computes as it decodes.
        ours, theirs = got.span_batch(), expected.span_batch()
        assert ((ours.keys, ours.trace_ids, ours.row_traces)
                == (theirs.keys, theirs.trace_ids, theirs.row_traces)), label
    else:
        assert got == expected, f"{label}: reference raised {expected!r}, got {got!r}"


def check(body: bytes, label: str) -> bool:
    """Native == reference for ``body``; returns whether the native path handled it."""
    expected = outcome(decode_protobuf_reference, body)
    assert_same(outcome(decode_protobuf, body), expected, label)
    native = outcome(decode_native, body)
    if native is None:
        return False
    assert_same(native, expected, f"{label} (decode_native)")
    return True


# ---- tests ----------------------------------------------------------------------------------


def test_realistic_agent_workload_is_native_and_identical() -> None:
    bodies: Iterator[bytes] = request_bodies(2_000, seed=11, batch_size=100)
    for n, body in enumerate(bodies):
        assert check(body, f"workload request {n}"), f"workload request {n} fell back"


@pytest.mark.parametrize("block", range(4))
def test_random_requests_match_reference(block: int) -> None:
    per_block = RANDOM_REQUESTS // 4
    native = 0
    for seed in range(block * per_block, (block + 1) * per_block):
        native += check(random_request(seed), f"random request seed={seed}")
    assert native > per_block // 2, f"only {native}/{per_block} random requests went native"


def test_double_formatting_matches_reference() -> None:
    rng = random.Random(2024)
    doubles = list(EDGE_DOUBLES) + [random_double(rng) for _ in range(FLOAT_SAMPLES)]
    for start in range(0, len(doubles), 1_000):
        request = ExportTraceServiceRequest()
        spans = request.resource_spans.add().scope_spans.add().spans
        for n, value in enumerate(doubles[start:start + 1_000]):
            span = spans.add(trace_id=bytes(range(1, 17)), span_id=(n + 1).to_bytes(8, "big"),
                             start_time_unix_nano=1, end_time_unix_nano=2)
            add_attrs(span.attributes, [("x", value), ("xs", [value, -value])])
        body = request.SerializeToString()
        expected, got = decode_protobuf_reference(body), decode_protobuf(body)
        assert got.frame["attributes"].to_list() == expected.frame["attributes"].to_list()
        assert_frame_equal(got.frame, expected.frame, check_dtypes=True)


def _bad_utf8(span: Span) -> None:
    span.name = "placeholder"


def _invalid_utf8_body() -> bytes:
    body = single_span_request(_bad_utf8)
    return body.replace(b"placeholder", b"placeholde\xff")


TARGETED: dict[str, bytes] = {
    "empty body": b"",
    "garbage": bytes(random.Random(5).getrandbits(8) for _ in range(64)),
    "truncated": random_request(1)[:-7],
    "invalid utf-8 in a string": _invalid_utf8_body(),
    "15-byte trace id": single_span_request(lambda s: setattr(s, "trace_id", bytes(range(1, 16)))),
    "zero span id": single_span_request(lambda s: setattr(s, "span_id", bytes(8))),
    "7-byte parent": single_span_request(lambda s: setattr(s, "parent_span_id", b"\x01" * 7)),
    "status code 5": single_span_request(lambda s: setattr(s.status, "code", 5)),
    "end before start": single_span_request(lambda s: setattr(s, "end_time_unix_nano", 500)),
    "start >= 2**63": single_span_request(lambda s: setattr(s, "start_time_unix_nano", 2**63)),
    "infinite token count": single_span_request(lambda s: add_attrs(
        s.attributes, [("gen_ai.usage.input_tokens", math.inf)])),
    "token count beyond int64": single_span_request(lambda s: add_attrs(
        s.attributes, [("llm.token_count.prompt", "99999999999999999999")])),
    "token total overflows": single_span_request(lambda s: add_attrs(
        s.attributes, [("gen_ai.usage.input_tokens", 2**63 - 1),
                       ("gen_ai.usage.output_tokens", 1)])),
}


@pytest.mark.parametrize("label", sorted(TARGETED))
def test_targeted_bodies_match_reference(label: str) -> None:
    check(TARGETED[label], label)


def test_rejected_span_gives_partial_success_natively() -> None:
    result = decode_protobuf(TARGETED["15-byte trace id"])
    assert (result.accepted, result.rejected) == (0, 1)
    assert result.errors == ["resourceSpans[0].scopeSpans[0].spans[0]: "
                             "traceId must be 16 bytes, got 15"]


COUNT_VALUES: tuple[Any, ...] = (
    " 12 ", "+1_000", "007", "1__0", "_1", "1_", "- 1", "+", "", "0x10", "\x1c12\x1f",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "twelve", 1.5, -1.9, 9.2e18, -9.3e18, 1e19, math.nan, math.inf,
    -math.inf, True, [1], Pairs((("n", 1),)), 2**63 - 1, -(2**63))


@pytest.mark.parametrize("value", COUNT_VALUES, ids=repr)
def test_token_counts_convert_natively_as_the_reference_does(value: Any) -> None:
    body = single_span_request(lambda s: add_attrs(
        s.attributes, [("gen_ai.usage.input_tokens", value), ("gen_ai.usage.output_tokens", 1)]))
    assert check(body, f"input tokens {value!r}"), "fell back to the reference"


def test_counts_an_int64_cannot_hold_are_unknown_not_errors() -> None:
    for label in ("infinite token count", "token count beyond int64", "token total overflows"):
        frame = decode_protobuf(TARGETED[label]).frame
        assert frame.height == 1, label
        assert frame["tokens_total"].to_list() == [None], label


def test_a_time_beyond_int64_rejects_only_that_span() -> None:
    result = decode_protobuf(TARGETED["start >= 2**63"])
    assert (result.accepted, result.rejected) == (0, 1)
    assert result.errors == ["resourceSpans[0].scopeSpans[0].spans[0]: "
                             "startTimeUnixNano 9223372036854775808 is out of range"]


# ---- hostile shapes: many keys, deep values, attribute caps ---------------------------------


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, written by hand (deep nesting included)."""
    size, length = len(payload), b""
    while True:
        length += bytes([(size & 0x7F) | (0x80 if size > 0x7F else 0)])
        size >>= 7
        if not size:
            return bytes([number << 3 | 2]) + length + payload


def _nested(levels: int, kind: str) -> bytes:
    """An AnyValue holding a string under ``levels`` arrays or maps."""
    value = _field(1, b"leaf")
    for _ in range(levels):
        value = (_field(5, _field(1, value)) if kind == "array"
                 else _field(6, _field(1, _field(1, b"k") + _field(2, value))))
    return value


def _deep_request(levels: int, kind: str, where: str) -> bytes:
    attribute = _field(1, b"deep") + _field(2, _nested(levels, kind))
    span = _field(1, bytes(range(1, 17))) + _field(2, bytes(range(1, 9)))
    if where == "span":
        span += _field(9, attribute)
    elif where == "event":
        span += _field(11, _field(2, b"e") + _field(3, attribute))
    resource = _field(1, attribute) if where == "resource" else b""
    return _field(1, _field(1, resource) + _field(2, _field(2, span)))


@pytest.mark.parametrize("where", ["span", "event", "resource"])
@pytest.mark.parametrize("kind", ["array", "map"])
def test_values_nested_near_the_parsers_limit_decode_as_the_reference_does(
        kind: str, where: str) -> None:
    # The reference's parser stops at 100 nested messages: 47 arrays or 31 maps under a
    # span attribute. Either side of that the two decoders agree.
    limit = 47 if kind == "array" else 31
    outcomes = []
    for levels in range(limit - 4, limit + 4):
        body = _deep_request(levels, kind, where)
        check(body, f"{kind} x{levels} in {where}")
        outcomes.append(isinstance(outcome(decode_protobuf_reference, body), DecodeResult))
    assert outcomes[0] and not outcomes[-1], "the cases do not straddle the parser's limit"


def test_long_attribute_lists_fold_duplicates_as_the_reference_does() -> None:
    rng = random.Random(7)
    keys = [f"key.{n}" for n in range(300)]

    def configure(span: Span) -> None:
        items = [(rng.choice(keys), random_value(rng)) for _ in range(900)]
        items.append(("nested", Pairs((f"k{rng.randrange(40)}", n) for n in range(200))))
        add_attrs(span.attributes, items)
        event = span.events.add(name="exception", time_unix_nano=5)
        add_attrs(event.attributes, [(f"e{rng.randrange(30)}", n) for n in range(100)])

    for n in range(5):
        body = single_span_request(configure)
        assert check(body, f"900 attributes, seed step {n}"), "fell back to the reference"
    frame = decode_protobuf(body).frame
    assert len(json.loads(frame["attributes"][0])["nested"]) == 40


def test_an_overridden_duplicate_is_still_checked_for_utf8_in_a_long_list() -> None:
    def configure(span: Span) -> None:
        add_attrs(span.attributes, [(f"k{n}", "v") for n in range(40)]
                  + [("k3", "placeholder"), ("k3", "last")])

    body = single_span_request(configure).replace(b"placeholder", b"placeholde\xff")
    assert isinstance(outcome(decode_protobuf_reference, body), tuple)
    check(body, "invalid UTF-8 in an overridden value")


def test_spans_over_the_attribute_cap_are_rejected_by_both_decoders() -> None:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for n, count in enumerate((3, 4, 5, 12)):
        span = spans.add(trace_id=bytes(range(1, 17)), span_id=(n + 1).to_bytes(8, "big"),
                         name=f"s{count}", start_time_unix_nano=1, end_time_unix_nano=2)
        add_attrs(span.attributes, [(f"a{i % 4}", i) for i in range(count)])
    body = request.SerializeToString()
    expected = decode_protobuf_reference(body, max_attributes=4)
    assert expected.frame["name"].to_list() == ["s3", "s4"]
    assert expected.errors == [
        f"resourceSpans[0].scopeSpans[0].spans[{n}]: {count} attributes exceed the limit of 4 "
        "per span (max_attributes_per_span); the span was not stored"
        for n, count in ((2, 5), (3, 12))]
    assert_same(decode_protobuf(body, max_attributes=4), expected, "capped")
    assert decode_native(body, max_attributes=4) is None  # rejected spans are the reference's
    assert check(body, "no cap") and decode_protobuf(body).accepted == 4


def test_trace_ids_built_to_collide_decode_in_linear_time() -> None:
    # Ids whose halves are equal all hashed to one slot before the hash was keyed.
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for n in range(1, 3_001):
        spans.add(trace_id=n.to_bytes(8, "big") * 2, span_id=n.to_bytes(8, "big"),
                  start_time_unix_nano=1, end_time_unix_nano=2)
    assert check(request.SerializeToString(), "colliding trace ids")
