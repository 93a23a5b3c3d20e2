"""Order-preserving byte keys for Convex values (spec 1.4).

Comparing two keys with ``memcmp`` (SQLite ``BLOB`` order) gives Convex's total
order: ``UNSET`` < null < Int64 < Float64 < Boolean < String < Bytes < Array < Object.

Layout (FoundationDB-tuple style, one tag byte per value):

- ``UNSET`` 0x01, null 0x03, false 0x0E, true 0x0F;
- Int64: zero is 0x08 alone; otherwise the two's-complement big-endian value
  trimmed to 1, 2, 4 or 8 bytes, tagged 0x08 ± 1..4 (negatives below zero, wider
  magnitudes further out), so tags order by sign and width and bytes within one;
- Float64: 0x0D then the 8 big-endian IEEE bits with the sign bit flipped
  (positives) or every bit flipped (negatives): IEEE total order, so -0.0 < 0.0
  and NaNs order by sign and payload;
- String 0x10 / Bytes 0x11: the (UTF-8) bytes with 0x00 escaped as 0x00 0xFF,
  then a 0x00 terminator;
- Array 0x12: elements, then 0x00; Object 0x15: per field in name order (UTF-8
  bytes) the escaped name and the value's key, then 0x00.

Every key is self-delimiting and begins with a tag <= 0x15, which is why a tuple
key is just the concatenation and a tuple's key is a prefix of any longer
tuple's key that starts with it; ``key_successor`` gives the end of such a range.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

from gateway.errors import ConvexValueError
from gateway.values.core import UNSET, Int64, Value, as_basic_type, int_as_float

__all__ = [
    "TAG_UNSET",
    "creation_id_key",
    "encode_index_key",
    "encode_key",
    "key_successor",
]

TAG_UNSET: Final = 0x01
_NULL: Final = b"\x03"
_ZERO_INT: Final = b"\x08"
_FALSE: Final = b"\x0e"
_TRUE: Final = b"\x0f"
_UNSET_KEY: Final = b"\x01"
_TERM: Final = 0x00
_SIGN: Final = 1 << 63
_ALL: Final = (1 << 64) - 1

_pack_double = struct.Struct(">d").pack
_unpack_u64 = struct.Struct(">Q").unpack
_pack_float_key = struct.Struct(">BQ").pack


def encode_key(value: Value) -> bytes:
    """The sort key of one value (``UNSET`` allowed: it is the "missing field" key)."""
    if value is UNSET:
        return _UNSET_KEY
    out = bytearray()
    _write(out, value)
    return bytes(out)


def encode_index_key(values: Sequence[Value]) -> bytes:
    """The key of a tuple of values: the concatenation of their keys.

    Orders like lexicographic tuple comparison, and the key of ``(a,)`` is a prefix of
    the key of ``(a, b)``, so a range over a prefix is ``[prefix, key_successor(prefix))``.
    """
    out = bytearray()
    for value in values:
        if value is UNSET:
            out.append(TAG_UNSET)
        else:
            _write(out, value)
    return bytes(out)


def creation_id_key(creation_time: float, doc_id: str) -> bytes:
    """``encode_index_key((creation_time, doc_id))`` for a float and an id: the tail of
    every stored index's key, made for every document written. An id is ASCII without
    NUL (base32), so its key is its bytes between the tag and the terminator. A test
    holds it to ``encode_index_key`` on random input."""
    if type(creation_time) is not float or not doc_id.isascii() or "\x00" in doc_id:
        return encode_index_key((creation_time, doc_id))
    (bits,) = _unpack_u64(_pack_double(creation_time))
    bits = bits ^ _ALL if bits & _SIGN else bits | _SIGN
    return _pack_float_key(0x0D, bits) + b"\x10" + doc_id.encode("ascii") + b"\x00"


def key_successor(prefix: bytes) -> bytes:
    """The smallest key above the key of every tuple that starts with the tuple whose
    key is ``prefix``: ``prefix + b"\\xff"``.

    So ``[prefix, key_successor(prefix))`` holds exactly the tuples that start with
    that prefix (an ``eq`` range), and ``>= key_successor(prefix)`` is a ``gt`` bound.
    Past a complete tuple key, a longer tuple's key goes on with a tag (<= 0x15),
    never 0xFF; only a key whose last string or bytes value goes on with a NUL
    (escaped 0x00 0xFF) continues with 0xFF. So this is deliberately *not* the
    byte-wise successor (``b"\\x11\\x00"`` + 1), which
    would wrongly put ``b"\\x00"`` inside the range of ``b""``. The empty prefix gives
    ``b"\\xff"``, above every key.
    """
    return prefix + b"\xff"


def _escaped(raw: bytes) -> bytes:
    if b"\x00" in raw:
        return raw.replace(b"\x00", b"\x00\xff")
    return raw


def _write(out: bytearray, v: Value) -> None:
    t = type(v)
    if t is str:
        out.append(0x10)
        out += _escaped(v.encode("utf-8"))
        out.append(_TERM)
    elif t is float:
        _write_float(out, v)
    elif t is dict:
        out.append(0x15)
        for name in sorted(v):
            x = v[name]
            if x is UNSET:
                continue
            out += _escaped(name.encode("utf-8"))
            out.append(_TERM)
            _write(out, x)
        out.append(_TERM)
    elif t is list or t is tuple:
        out.append(0x12)
        for x in v:
            if x is UNSET:
                raise ConvexValueError(
                    "UNSET (undefined) may not appear inside an array; use None (null)"
                )
            _write(out, x)
        out.append(_TERM)
    elif t is bool:
        out += _TRUE if v else _FALSE
    elif v is None:
        out += _NULL
    elif t is Int64:
        _write_int64(out, v)
    elif t is int:
        _write_float(out, int_as_float(v))
    elif t is bytes:
        out.append(0x11)
        out += _escaped(v)
        out.append(_TERM)
    else:
        _write(out, _basic(v))


def _write_float(out: bytearray, f: float) -> None:
    (bits,) = _unpack_u64(_pack_double(f))
    bits = bits ^ _ALL if bits & _SIGN else bits | _SIGN
    out += _pack_float_key(0x0D, bits)


def _write_int64(out: bytearray, n: int) -> None:
    if n == 0:
        out += _ZERO_INT
        return
    if -0x80 <= n <= 0x7F:
        width, step = 1, 1
    elif -0x8000 <= n <= 0x7FFF:
        width, step = 2, 2
    elif -0x8000_0000 <= n <= 0x7FFF_FFFF:
        width, step = 4, 3
    else:
        width, step = 8, 4
    out.append(0x08 - step if n < 0 else 0x08 + step)
    out += n.to_bytes(width, "big", signed=True)


def _basic(v: object) -> Value:
    return as_basic_type(
        v,
        unset_error=(
            "UNSET (undefined) may only stand alone or as an index key part, not inside an array"
        ),
        purpose="has no sort key",
    )
