"""The MicroPython CBOR encoder (outpost_cbor) against cbor2's decoder and encoder."""

from __future__ import annotations

from typing import Any

import cbor2
import outpost_cbor
import pytest
from cbor_values import readings, typed
from hypothesis import given, settings


@settings(max_examples=150, deadline=None)
@given(readings)
def test_random_readings_decode_to_themselves(reading: dict[str, Any]) -> None:
    assert typed(cbor2.loads(outpost_cbor.dumps(reading))) == typed(reading)


@settings(max_examples=100, deadline=None)
@given(readings)
def test_bytes_equal_cbor2s_except_for_float_widths(reading: dict[str, Any]) -> None:
    """Both write shortest heads; cbor2 may shorten a float, this encoder never does."""
    encoded = outpost_cbor.dumps(reading)
    if b"\xfb" not in encoded:  # no float64 head byte anywhere: no float was written
        assert encoded == cbor2.dumps(reading)


@pytest.mark.parametrize("length", [0, 23, 24, 255, 256, 65535, 65536, 70000])
def test_lengths_need_one_two_or_four_byte_heads(length: int) -> None:
    value = {
        "text": "é" * (length // 2) + "x" * (length % 2),
        "bytes": b"\x00" * length,
        "array": [1] * min(length, 300),
        "map": {f"k{i}": -i for i in range(min(length, 70000) // 100)},
    }
    encoded = outpost_cbor.dumps(value)
    assert typed(cbor2.loads(encoded)) == typed(value)
    assert encoded == cbor2.dumps(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "00"),
        (23, "17"),
        (24, "1818"),
        (-1, "20"),
        (-25, "3818"),
        (65536, "1a00010000"),
        (2**53, "1b0020000000000000"),
        (-(2**53), "3b001fffffffffffff"),
        (1.5, "fb3ff8000000000000"),
        (True, "f5"),
        (None, "f6"),
        ("a", "6161"),
    ],
)
def test_known_encodings(value: Any, expected: str) -> None:
    """RFC 8949 appendix A's examples (floats as float64)."""
    assert outpost_cbor.dumps(value).hex() == expected


@pytest.mark.parametrize("value", [2**53 + 1, -(2**53) - 1, {1: "x"}, {"s": {1, 2}}, object()])
def test_what_the_gateway_would_refuse_is_refused_here(value: Any) -> None:
    with pytest.raises(ValueError):
        outpost_cbor.dumps(value)
