from __future__ import annotations

import struct
from functools import cmp_to_key
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from values_strategies import float_from_bits

from gateway.errors import ConvexValueError
from gateway.values import (
    INT64_MAX,
    INT64_MIN,
    UNSET,
    Int64,
    compare_values,
    creation_id_key,
    encode_index_key,
    encode_key,
    key_successor,
    values_equal,
)

NEG_NAN = float_from_bits(0xFFF8000000000000)
NAN = float_from_bits(0x7FF8000000000000)
NAN_BIG = float_from_bits(0x7FFFFFFFFFFFFFFF)

# Strictly increasing in Convex's order.
ASCENDING: list[Any] = [
    UNSET,
    None,
    Int64(INT64_MIN),
    Int64(-(2**31) - 1),
    Int64(-(2**31)),
    Int64(-32769),
    Int64(-32768),
    Int64(-129),
    Int64(-128),
    Int64(-1),
    Int64(0),
    Int64(1),
    Int64(127),
    Int64(128),
    Int64(32767),
    Int64(32768),
    Int64(2**31 - 1),
    Int64(2**31),
    Int64(INT64_MAX),
    NEG_NAN,
    float("-inf"),
    -1e300,
    -1.0,
    -5e-324,
    -0.0,
    0.0,
    5e-324,
    1.0,
    1e300,
    float("inf"),
    NAN,
    NAN_BIG,
    False,
    True,
    "",
    "\x00",
    "\x00\x00",
    "a",
    "a\x00",
    "a\x00b",
    "ab",
    "\x7f",
    "é",
    "\uffff",
    "\U0001f600",  # UTF-8 order: non-BMP after U+FFFF (UTF-16 order would differ)
    b"",
    b"\x00",
    b"\x00\xff",
    b"\x01",
    b"\xff",
    b"\xff\x00",
    [],
    [None],
    [Int64(0)],
    [0.0],
    [0.0, 0.0],
    [1.0],
    ["a"],
    [[]],
    [{}],
    {},
    {"a": None},
    {"a": 0.0},
    {"a": 0.0, "b": 0.0},
    {"a": 1.0},
    {"a ": 0.0},
    {"aa": 0.0},
    {"b": None},
]


def test_ascending_examples() -> None:
    keys = [encode_key(v) for v in ASCENDING]
    for i, (a, b) in enumerate(zip(ASCENDING, ASCENDING[1:])):
        assert compare_values(a, b) == -1, (i, a, b)
        assert compare_values(b, a) == 1, (i, a, b)
        assert keys[i] < keys[i + 1], (i, a, b)
    shuffled = ASCENDING[::-1]
    assert [encode_key(v) for v in sorted(shuffled, key=cmp_to_key(compare_values))] == keys


def test_exact_bytes() -> None:
    assert encode_key(UNSET) == b"\x01"
    assert encode_key(None) == b"\x03"
    assert encode_key(Int64(0)) == b"\x08"
    assert encode_key(Int64(1)) == b"\x09\x01"
    assert encode_key(Int64(-1)) == b"\x07\xff"
    assert encode_key(Int64(256)) == b"\x0a\x01\x00"
    assert encode_key(Int64(-(2**31))) == b"\x05\x80\x00\x00\x00"
    assert encode_key(Int64(INT64_MAX)) == b"\x0c\x7f" + b"\xff" * 7
    assert encode_key(Int64(INT64_MIN)) == b"\x04\x80" + b"\x00" * 7
    assert encode_key(0.0) == b"\x0d\x80" + b"\x00" * 7
    assert encode_key(-0.0) == b"\x0d\x7f" + b"\xff" * 7
    assert encode_key(1.0) == b"\x0d" + struct.pack(">Q", 0x3FF0000000000000 | 1 << 63)
    assert encode_key(False) == b"\x0e"
    assert encode_key(True) == b"\x0f"
    assert encode_key("a\x00b") == b"\x10a\x00\xffb\x00"
    assert encode_key(b"\x00") == b"\x11\x00\xff\x00"
    assert encode_key([None, True]) == b"\x12\x03\x0f\x00"
    assert encode_key({"b": True, "a": None}) == b"\x15a\x00\x03b\x00\x0f\x00"


def test_plain_int_keys_like_float() -> None:
    assert encode_key(2) == encode_key(2.0)
    assert encode_key(2) != encode_key(Int64(2))
    assert compare_values(2, 2.0) == 0
    with pytest.raises(ConvexValueError, match="outside ±2\\^53"):
        encode_key(2**60)


def test_float_equality_is_bitwise() -> None:
    assert values_equal(NAN, NAN)
    assert not values_equal(NAN, NAN_BIG)
    assert not values_equal(-0.0, 0.0)
    assert compare_values(-0.0, 0.0) == -1
    assert not values_equal(Int64(1), 1.0)
    assert values_equal({"a": [1.0]}, {"a": [1.0]})


def test_unset_fields_are_ignored_in_objects() -> None:
    assert encode_key({"a": UNSET, "b": 1.0}) == encode_key({"b": 1.0})
    assert compare_values({"a": UNSET}, {}) == 0


def test_unset_inside_arrays_is_an_error() -> None:
    with pytest.raises(ConvexValueError, match="inside an array"):
        encode_key([UNSET])
    with pytest.raises(ConvexValueError, match="inside an array"):
        compare_values([UNSET], [None])


def test_non_values_are_errors() -> None:
    with pytest.raises(ConvexValueError, match="no sort key"):
        encode_key({1, 2})
    with pytest.raises(ConvexValueError, match="cannot be compared"):
        compare_values(object(), 1.0)


def test_subclasses_key_like_basic_types() -> None:
    assert encode_key((1.0, "a")) == encode_key([1.0, "a"])
    assert encode_key(bytearray(b"\x00")) == encode_key(b"\x00")


def test_index_key_is_concatenation_with_unset() -> None:
    key = encode_index_key(["dev", UNSET, 3.0])
    assert key == encode_key("dev") + b"\x01" + encode_key(3.0)
    assert encode_index_key([]) == b""
    assert encode_index_key(("dev",)) == encode_key("dev")
    assert key.startswith(encode_index_key(["dev"]))


def test_key_successor_bounds_a_prefix_range() -> None:
    p = encode_index_key(["dev"])
    hi = key_successor(p)
    assert hi == p + b"\xff"
    inside: list[list[Any]] = [["dev"], ["dev", UNSET], ["dev", None], ["dev", {"z": [b"\xff"]}]]
    outside_above: list[list[Any]] = [["dev\x00"], ["dev\x00", 1.0], ["deva"], ["dew"]]
    outside_below: list[list[Any]] = [["de"], ["de\x00v"], [UNSET], []]
    for t in inside:
        assert p <= encode_index_key(t) < hi
    for t in outside_above:
        assert encode_index_key(t) >= hi
    for t in outside_below:
        assert encode_index_key(t) < p
    assert all(encode_key(v) < key_successor(b"") for v in ASCENDING)


CREATION_TIMES = st.one_of(
    st.floats(allow_nan=True),
    st.sampled_from([0.0, -0.0, 1_700_000_000_000.5, float("inf"), float("-inf")]),
    st.integers(-(2**53), 2**53),
)
DOC_IDS = st.one_of(
    st.text(st.sampled_from("0123456789abcdefghjkmnpqrstvwxyz"), min_size=31, max_size=37),
    st.text(max_size=6),  # the general path: non-ASCII, NUL
)


@settings(max_examples=2000)
@given(CREATION_TIMES, DOC_IDS)
def test_the_creation_id_tail_is_the_tuple_key(creation: float, doc_id: str) -> None:
    assert creation_id_key(creation, doc_id) == encode_index_key((creation, doc_id))
    # by_id's key is the tail less the first part's 9 bytes
    assert creation_id_key(creation, doc_id)[9:] == encode_index_key([doc_id])
