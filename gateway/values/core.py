"""The Python side of Convex's value types: ``Int64``, ``UNSET`` and the ``Value`` alias.

Mapping (spec/python-api.md, "Values"; DESIGN decision 6):

=========  ==================================================================
Convex     Python
=========  ==================================================================
Null       ``None``
Boolean    ``bool``
Float64    ``float``; a plain ``int`` is a Float64 too (it must fit in ±2^53)
Int64      ``Int64`` only (an ``int`` subclass, explicit by construction)
String     ``str`` (valid Unicode: no lone surrogates)
Bytes      ``bytes``
Array      ``list``
Object     ``dict`` with ``str`` keys
undefined  ``UNSET`` (never stored: removes a field in a patch, means "missing"
           in index ranges and filters)
=========  ==================================================================
"""

from __future__ import annotations

from typing import Any, Final, final

from gateway.errors import ConvexValueError

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_SAFE_INTEGER",
    "UNSET",
    "Int64",
    "Unset",
    "Value",
    "int_as_float",
]

INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1
#: Largest magnitude a plain ``int`` may have to be taken as a Float64 without loss.
MAX_SAFE_INTEGER: Final = 1 << 53

#: A Convex value as Python holds it (see the module docstring for the mapping).
#: ``Any`` on purpose: a precise recursive union would force casts on every caller
#: that indexes into documents, and validation happens at run time anyway.
Value = Any


class Int64(int):
    """An explicit Convex Int64 (wire ``{"$integer": ...}``).

    ``Int64(x)`` accepts an ``int`` in ``[-2**63, 2**63)``; anything else raises
    ``ConvexValueError``. Arithmetic on it gives plain ``int`` results, which count as
    Float64 again: wrap the result in ``Int64(...)`` to keep it an Int64.
    """

    __slots__ = ()

    def __new__(cls, value: int) -> Int64:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConvexValueError(
                f"Int64() takes an int, not {type(value).__name__} ({value!r}); "
                "convert it first, e.g. Int64(int(x))"
            )
        if not INT64_MIN <= value <= INT64_MAX:
            raise ConvexValueError(
                f"Int64({value}) is out of range: an Int64 holds -2^63 to 2^63-1; "
                "use a float for larger magnitudes"
            )
        return super().__new__(cls, value)

    def __repr__(self) -> str:
        return f"Int64({int.__repr__(self)})"

    def __str__(self) -> str:
        return int.__repr__(self)

    def __reduce__(self) -> tuple[type[Int64], tuple[int]]:
        return (Int64, (int(self),))


@final
class Unset:
    """Convex ``undefined``; use the singleton ``UNSET``.

    In ``db.patch`` a field set to ``UNSET`` is removed; in index ranges and filters it
    is the value of a missing field and sorts before ``None``. Object fields whose
    value is ``UNSET`` are dropped when a value is normalised (``{a: undefined}`` is
    ``{}``); inside an array it is an error.
    """

    __slots__ = ()
    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        inst = cls._instance
        if inst is None:
            inst = super().__new__(cls)
            cls._instance = inst
        return inst

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNSET"

    def __copy__(self) -> Unset:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Unset:
        return self


UNSET: Final = Unset()


def int_as_float(value: int) -> float:
    """A plain ``int`` read as the Float64 it stands for (DESIGN decision 6).

    Raises ``ConvexValueError`` beyond ±2^53, where the conversion would lose digits.
    """
    if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return float(value)
    raise ConvexValueError(
        f"the integer {value} is outside ±2^53; use Int64(x) or a float "
        "(a plain int is a Float64, and this one cannot be stored exactly)"
    )


def as_basic_type(v: object, *, unset_error: str, purpose: str) -> Value:
    """Subclasses of the basic types as the basic types; anything else is an error.

    ``purpose`` finishes the sentence "a <type> is not a Convex value and ...".
    """
    if v is UNSET:
        raise ConvexValueError(unset_error)
    if isinstance(v, Int64):
        return Int64(int(v))
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v)
    if isinstance(v, list | tuple):
        return list(v)
    if isinstance(v, dict):
        return dict(v)
    raise ConvexValueError(
        f"a {type(v).__name__} is not a Convex value and {purpose}; "
        "normalise values with to_convex() first"
    )
