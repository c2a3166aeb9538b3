"""RFC 8785 canonical JSON: the number and key-order vectors of the RFC, and independence
from how the input was spelled."""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import random
import struct

import pytest

from halo_nb.interchange.canonical_json import canonical_json, number, write_canonical
from halo_nb.interchange.snapshot import checksum

canonical_module = importlib.import_module("halo_nb.interchange.canonical_json")

# RFC 8785 appendix B (IEEE 754 bit patterns → ECMAScript strings), and section 3.2.2.3.
RFC_NUMBERS = [
    ("0000000000000000", "0"), ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"), ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"), ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"), ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"), ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"), ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"), ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"), ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"), ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"), ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"), ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "expected"), RFC_NUMBERS)
def test_numbers_as_ecmascript_writes_them(bits: str, expected: str) -> None:
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert number(value) == expected
    assert canonical_json(value) == expected.encode()


def test_keys_sort_by_utf16_code_units_and_strings_escape_minimally() -> None:
    # RFC 8785 section 3.2.3's example: the property names sort as UTF-16 code units.
    value = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet",
             "1": "One", "\U0001f600": "Emoji: Grinning Face", "\u0080": "Control",
             "\u00f6": "Latin Small Letter O With Diaeresis"}
    names = [k for k in json.loads(canonical_json(value))]
    assert names == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert canonical_json({"a": 'say "hi"\n\t\u0001é/'}) == (
        '{"a":"say \\"hi\\"\\n\\t\\u0001é/"}'.encode())


def test_the_same_value_however_it_was_spelled() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        value = struct.unpack(">d", rng.getrandbits(64).to_bytes(8, "big"))[0]
        if not math.isfinite(value):
            continue
        doc = {"z": [value, {"y": value}], "a": 1}
        spellings = [json.dumps(doc), json.dumps(doc, indent=3, sort_keys=True),
                     json.dumps(doc).replace(repr(value), f"{value:.17e}")]
        assert len({canonical_json(json.loads(s)) for s in spellings}) == 1
        assert float(number(value)) == value


def test_large_integers_keep_their_digits_and_bad_values_are_refused() -> None:
    assert canonical_json([2**63 - 1, -(2**63), 2**53, 3]) == (
        b"[9223372036854775807,-9223372036854775808,9007199254740992,3]")
    with pytest.raises(TypeError):
        canonical_json({1: "x"})
    with pytest.raises(TypeError):
        canonical_json({"x": object()})


def test_the_form_handed_out_in_pieces_is_the_same_bytes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(canonical_module, "CHUNK_CHARS", 7)  # pieces end mid-string
    value = {"b": ["é" * 11, "\ud83d\ude00 \udc80 lone", 1e21, None], "a": {"z": "x" * 30}}
    pieces: list[bytes] = []
    write_canonical(value, pieces.append)
    assert len(pieces) > 5
    assert b"".join(pieces) == canonical_json(value)
    assert hashlib.sha256(b"".join(pieces)).hexdigest() == checksum(value).split(":")[1]
