"""Convex's size accounting (spec 1.3): the figure behind the 1 MiB document limit
and the read/write byte limits.

null 1, boolean 1, Int64 9, Float64 9, string 2 + UTF-8 bytes, bytes 2 + length,
array 2 + sum of elements, object 2 + sum of (name bytes + 1 + value size);
``UNSET`` (and an object field holding it) counts 0.
"""

from __future__ import annotations

from gateway.errors import ConvexValueError
from gateway.values.core import UNSET, Int64, Value

__all__ = ["convex_size"]


def convex_size(value: Value) -> int:
    """The Convex size of ``value`` in bytes (a plain ``int`` counts as a Float64)."""
    t = type(value)
    if t is str:
        return 2 + (len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass")))
    if t is float or t is int or t is Int64:
        return 9
    if t is dict:
        total = 2
        for k, x in value.items():
            if x is UNSET:
                continue
            total += (len(k) if k.isascii() else len(k.encode("utf-8", "surrogatepass"))) + 1
            total += convex_size(x)
        return total
    if t is list or t is tuple:
        total = 2
        for x in value:
            total += convex_size(x)
        return total
    if value is None or t is bool:
        return 1
    if t is bytes or t is bytearray or t is memoryview:
        return 2 + len(value) if t is not memoryview else 2 + value.nbytes
    if value is UNSET:
        return 0
    if isinstance(value, str):
        return convex_size(str.__str__(value))
    if isinstance(value, int | float):
        return 9
    if isinstance(value, bytes | bytearray):
        return 2 + len(value)
    if isinstance(value, dict):
        return convex_size(dict(value))
    if isinstance(value, list | tuple):
        return convex_size(list(value))
    raise ConvexValueError(
        f"convex_size() got a {type(value).__name__}, which is not a Convex value; "
        "normalise it with to_convex() first"
    )
