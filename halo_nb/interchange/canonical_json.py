"""RFC 8785 JSON canonicalisation (JCS): the bytes a snapshot checksum covers.

The canonical form depends on no JSON library's version: object keys sorted by their
UTF-16 code units, no whitespace, strings escaped as ECMAScript's JSON.stringify does
(only ``"``, ``\\`` and control characters; everything else as UTF-8), and numbers in
ECMAScript's shortest round-trip form (``1e+21``, ``1e-7``, ``100``, ``4.5``). So a
snapshot verifies after any tool re-serialises it (pretty-printed, keys reordered,
``1e20`` spelled ``1e+20`` or ``100000000000000000000``).

Two documented extensions, because snapshots can hold what RFC 8785 excludes: integers
beyond 2**53 keep all their digits (JCS would round them through a double), and
non-finite floats are written as the tokens ``NaN``, ``Infinity`` and ``-Infinity``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any

_SAFE_INTEGER = 2**53
CHUNK_CHARS = 1 << 20


def canonical_json(value: Any) -> bytes:
    """``value`` (dicts with str keys, lists, str, int, float, bool, None) in RFC 8785 form."""
    chunks: list[bytes] = []
    write_canonical(value, chunks.append)
    return b"".join(chunks)


def write_canonical(value: Any, emit: Callable[[bytes], object]) -> None:
    """``canonical_json(value)`` handed to ``emit`` in pieces of about CHUNK_CHARS, so a
    checksum over a large snapshot never holds its whole canonical form (UTF-8 encodes
    code point by code point: the pieces join to the same bytes)."""
    sink = _Sink(emit)
    _write(value, sink)
    sink.flush()


class _Sink:
    def __init__(self, emit: Callable[[bytes], object]) -> None:
        self._emit = emit
        self._parts: list[str] = []
        self._size = 0

    def append(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)
        if self._size >= CHUNK_CHARS:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            self._emit("".join(self._parts).encode("utf-8", errors="surrogatepass"))
            self._parts = []
            self._size = 0


def _write(value: Any, out: _Sink) -> None:
    if isinstance(value, str):
        out.append(encode_basestring(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value) if abs(value) > _SAFE_INTEGER else number(float(value)))
    elif isinstance(value, float):
        out.append(number(value))
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"canonical JSON needs string keys, got {type(key).__name__}")
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16_key)):
            if i:
                out.append(",")
            out.append(encode_basestring(key))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"not a JSON value: {type(value).__name__}")


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", errors="surrogatepass")


def number(value: float) -> str:
    """ECMAScript's Number.prototype.toString for a double (RFC 8785 section 3.2.2.3)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    digits, exponent = _shortest(abs(value))
    n = len(digits)
    # The decimal point sits after digit number `point` (ECMAScript's n).
    point = exponent + 1
    if n <= point <= 21:
        return sign + digits + "0" * (point - n)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits
    mantissa = digits[0] + ("." + digits[1:] if n > 1 else "")
    e = point - 1
    return f"{sign}{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"


def _shortest(value: float) -> tuple[str, int]:
    """The shortest round-trip digits of a positive double and the decimal exponent of
    the first digit, from Python's repr (the same shortest-digits algorithm)."""
    text = repr(value)
    mantissa, _, exp = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    exponent = int(exp) if exp else 0
    digits = (whole + fraction).lstrip("0")
    leading_zeros = len(whole + fraction) - len(digits)
    exponent += len(whole) - 1 - leading_zeros
    return digits.rstrip("0") or "0", exponent
