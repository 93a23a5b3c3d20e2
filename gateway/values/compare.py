"""Convex's total order on values, written straight from spec 1.4.

This is the reference comparator: it does not use the byte keys of ``sort_key``,
and the property tests check that the two agree.

Across types: ``UNSET`` < null < Int64 < Float64 < Boolean < String < Bytes < Array
< Object. Within a type: Int64 numerically; Float64 by IEEE-754 ``totalOrder``
(-NaN < -inf < ... < -0.0 < 0.0 < ... < inf < NaN, NaNs by payload); false < true;
strings by code point (= UTF-8 byte order); bytes lexicographically; arrays element
by element, a proper prefix first; objects as the sequence name1, value1, name2,
value2, ... with fields sorted by name, a proper prefix first.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from gateway.errors import ConvexValueError
from gateway.values.core import UNSET, Int64, Value, int_as_float

__all__ = ["compare_values", "values_equal"]

_RANK_UNSET: Final = 0
_RANK_NULL: Final = 1
_RANK_INT64: Final = 2
_RANK_FLOAT64: Final = 3
_RANK_BOOLEAN: Final = 4
_RANK_STRING: Final = 5
_RANK_BYTES: Final = 6
_RANK_ARRAY: Final = 7
_RANK_OBJECT: Final = 8

_as_signed_bits = struct.Struct(">q").unpack
_pack_double = struct.Struct(">d").pack
_LOW_63: Final = (1 << 63) - 1


def _rank(v: Value) -> int:
    if v is UNSET:
        return _RANK_UNSET
    if v is None:
        return _RANK_NULL
    if isinstance(v, bool):
        return _RANK_BOOLEAN
    if isinstance(v, Int64):
        return _RANK_INT64
    if isinstance(v, int | float):
        return _RANK_FLOAT64  # a plain int is a Float64 (DESIGN decision 6)
    if isinstance(v, str):
        return _RANK_STRING
    if isinstance(v, bytes | bytearray | memoryview):
        return _RANK_BYTES
    if isinstance(v, list | tuple):
        return _RANK_ARRAY
    if isinstance(v, dict):
        return _RANK_OBJECT
    raise ConvexValueError(
        f"a {type(v).__name__} is not a Convex value and cannot be compared; "
        "normalise values with to_convex() first"
    )


def _cmp(a: Any, b: Any) -> int:
    return int(a > b) - int(a < b)


def _total_order_key(f: float) -> int:
    """IEEE-754 totalOrder as an integer: read the bits as a signed int and, for
    negative sign, reverse the order of the magnitude bits."""
    i: int = _as_signed_bits(_pack_double(f))[0]
    return i ^ _LOW_63 if i < 0 else i


def _float(v: int | float) -> float:
    return v if isinstance(v, float) else int_as_float(int(v))


def _name(field: tuple[str, Value]) -> str:
    return field[0]


def _fields(d: dict[str, Value]) -> list[tuple[str, Value]]:
    return sorted(((k, x) for k, x in d.items() if x is not UNSET), key=_name)


def compare_values(a: Value, b: Value) -> int:
    """-1, 0 or 1 as ``a`` sorts before, with or after ``b`` in Convex's order."""
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra in (_RANK_UNSET, _RANK_NULL):
        return 0
    if ra == _RANK_FLOAT64:
        return _cmp(_total_order_key(_float(a)), _total_order_key(_float(b)))
    if ra in (_RANK_INT64, _RANK_BOOLEAN):
        return _cmp(int(a), int(b))
    if ra == _RANK_STRING:
        # Python compares str by code point, which is the order of their UTF-8 bytes.
        return _cmp(str.__str__(a), str.__str__(b))
    if ra == _RANK_BYTES:
        return _cmp(bytes(a), bytes(b))
    if ra == _RANK_ARRAY:
        return _compare_sequences(list(a), list(b))
    fa, fb = _fields(a), _fields(b)
    for (ka, va), (kb, vb) in zip(fa, fb):
        if ka != kb:
            return -1 if ka < kb else 1
        c = compare_values(va, vb)
        if c:
            return c
    return _cmp(len(fa), len(fb))


def _compare_sequences(xs: list[Value], ys: list[Value]) -> int:
    for x, y in zip(xs, ys):
        if x is UNSET or y is UNSET:
            raise ConvexValueError("UNSET (undefined) may not appear inside an array")
        c = compare_values(x, y)
        if c:
            return c
    return _cmp(len(xs), len(ys))


def values_equal(a: Value, b: Value) -> bool:
    """Convex equality: same type and same value, floats compared bitwise
    (``NaN == NaN``, ``-0.0 != 0.0``, ``Int64(1) != 1.0``)."""
    return compare_values(a, b) == 0
