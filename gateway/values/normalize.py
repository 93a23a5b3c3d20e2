"""Validate a Python object as a Convex value and normalise it (spec 1.1, 1.3, 1.6).

``to_convex`` is the one gate every argument, return value and document passes
through: it returns a new structure made only of ``None``, ``bool``, ``Int64``,
``float``, ``str``, ``bytes``, ``list`` and ``dict``, or raises ``ConvexValueError``
with the path of the offending part (``args.readings[3].x is a set, ...``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from gateway.errors import ConvexValueError
from gateway.values.core import MAX_SAFE_INTEGER, UNSET, Int64, Value

__all__ = [
    "DOCUMENT_MAX_DEPTH",
    "MAX_ARRAY_LENGTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_FIELD_NAME_LENGTH",
    "MAX_OBJECT_FIELDS",
    "SYSTEM_FIELDS",
    "VALUE_MAX_DEPTH",
    "check_document_fields",
    "check_field_name",
    "format_path",
    "is_field_name",
    "to_convex",
]

#: Nesting limit of any value (args, returns); a scalar is depth 0, ``[1]`` depth 1.
VALUE_MAX_DEPTH: Final = 64
#: Nesting limit of a stored document (the document object itself is depth 1).
DOCUMENT_MAX_DEPTH: Final = 16
#: Size limit of a stored document, system fields included (``convex_size``).
MAX_DOCUMENT_BYTES: Final = 1 << 20
MAX_ARRAY_LENGTH: Final = 8192
MAX_OBJECT_FIELDS: Final = 1024
MAX_FIELD_NAME_LENGTH: Final = 1024
SYSTEM_FIELDS: Final = frozenset({"_id", "_creationTime"})

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Field names already known to be valid: one set lookup instead of four checks.
_GOOD_NAMES: set[str] = set()
_GOOD_NAMES_MAX = 8192


class _Invalid(Exception):
    """Internal: carries a problem up the recursion, collecting the path on the way."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.segments: list[str | int] = []  # innermost first


def format_path(segments: Iterable[str | int]) -> str:
    """``["readings", 3, "x"]`` -> ``.readings[3].x`` (odd names as ``["my key"]``)."""
    parts: list[str] = []
    for seg in segments:
        if isinstance(seg, int):
            parts.append(f"[{seg}]")
        elif _IDENTIFIER.match(seg):
            parts.append(f".{seg}")
        else:
            parts.append(f"[{seg!r}]")
    return "".join(parts)


def _field_name_problem(name: str) -> str | None:
    if not name:
        return "is empty; field names need at least one character"
    if len(name) > MAX_FIELD_NAME_LENGTH:
        return (
            f"is {len(name)} characters long; the limit is {MAX_FIELD_NAME_LENGTH}"
            " (keep long text in a value, not a key)"
        )
    if not (name.isascii() and name.isprintable()):
        return (
            "contains a character outside printable ASCII (0x20-0x7E); "
            "use a plain ASCII name, or store this mapping as a list of [key, value] pairs"
        )
    if name[0] == "$":
        return 'starts with "$", which is reserved for Convex\'s encodings; rename it'
    return None


def check_field_name(name: object) -> None:
    """Raise ``ConvexValueError`` unless ``name`` is a legal object field name."""
    if type(name) is str and name in _GOOD_NAMES:
        return
    if not isinstance(name, str):
        raise ConvexValueError(
            f"field name {name!r} is a {_type_name(name)}; object keys must be str"
        )
    problem = _field_name_problem(name)
    if problem is not None:
        raise ConvexValueError(f"field name {_short(name)} {problem}")
    _remember(name)


def is_field_name(name: str) -> bool:
    """Whether the string ``name`` is a legal object field name (``check_field_name``)."""
    if name in _GOOD_NAMES:
        return True
    if _field_name_problem(name) is not None:
        return False
    _remember(name)
    return True


def _remember(name: str) -> None:
    if len(_GOOD_NAMES) >= _GOOD_NAMES_MAX:
        _GOOD_NAMES.clear()
    _GOOD_NAMES.add(name)


def check_document_fields(doc: dict[str, Any]) -> None:
    """Top-level document fields may not start with ``_``, except ``_id``/``_creationTime``."""
    for name in doc:
        if name[:1] == "_" and name not in SYSTEM_FIELDS:
            raise ConvexValueError(
                f"document field {name!r} starts with '_', which is reserved for system "
                "fields (only _id and _creationTime may); rename it, e.g. "
                f"{name.lstrip('_') or 'field'!r}"
            )


def to_convex(value: object, *, what: str = "value", max_depth: int = VALUE_MAX_DEPTH) -> Value:
    """Validate ``value`` and return it as a new, normalised Convex value.

    Plain ``int`` becomes ``float`` (it must be within ±2^53), ``tuple`` becomes
    ``list``, ``bytearray``/``memoryview`` become ``bytes``, subclasses of the basic
    types become the basic types, and object fields whose value is ``UNSET`` are
    dropped. ``what`` names the value in error messages (``"args"``, ``"document"``).
    """
    try:
        if value is UNSET:
            raise _Invalid(
                "is UNSET (undefined), which is not a value on its own; use None (null), "
                "or leave the field out"
            )
        return _norm(value, 0, max_depth)
    except _Invalid as exc:
        path = format_path(reversed(exc.segments))
        raise ConvexValueError(f"{what}{path} {exc.problem}") from None


def _norm(v: object, depth: int, max_depth: int) -> Value:
    t = type(v)
    if t is str:
        if not v.isascii():  # type: ignore[attr-defined]
            _check_unicode(v)  # type: ignore[arg-type]
        return v
    if t is float or t is bool or v is None or t is Int64 or t is bytes:
        return v
    if t is dict:
        return _norm_dict(v, depth, max_depth)  # type: ignore[arg-type]
    if t is list or t is tuple:
        return _norm_list(v, depth, max_depth)  # type: ignore[arg-type]
    if t is int:
        return _plain_int(v)  # type: ignore[arg-type]
    return _norm_other(v, depth, max_depth)


def _plain_int(v: int) -> float:
    if -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER:
        return float(v)
    raise _Invalid(
        f"is {v}, which is outside ±2^53; use Int64(x) or a float "
        "(a plain int is a Float64, which cannot hold it exactly)"
    )


def _check_unicode(s: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = s[exc.start]
        raise _Invalid(
            f"is a string that is not valid Unicode (lone surrogate {bad!r} at index "
            f"{exc.start}); decode text with errors='replace', or send it as bytes"
        ) from None


def _norm_list(v: list[Any] | tuple[Any, ...], depth: int, max_depth: int) -> list[Value]:
    depth += 1
    if depth > max_depth:
        raise _too_deep(max_depth)
    if len(v) > MAX_ARRAY_LENGTH:
        raise _Invalid(
            f"is an array of {len(v)} elements; the limit is {MAX_ARRAY_LENGTH} "
            "(split it across documents, or page through it)"
        )
    out: list[Value] = []
    append = out.append
    for i, x in enumerate(v):
        t = type(x)
        if t is float or (t is str and x.isascii()) or t is bool or x is None:
            append(x)
            continue
        if x is UNSET:
            exc = _Invalid(
                "is UNSET (undefined), which may not appear inside an array; "
                "use None (null) or leave the element out"
            )
            exc.segments.append(i)
            raise exc
        try:
            append(_norm(x, depth, max_depth))
        except _Invalid as exc:
            exc.segments.append(i)
            raise
    return out


def _norm_dict(v: dict[Any, Any], depth: int, max_depth: int) -> dict[str, Value]:
    depth += 1
    if depth > max_depth:
        raise _too_deep(max_depth)
    out: dict[str, Value] = {}
    for k, x in v.items():
        if type(k) is not str or k not in _GOOD_NAMES:
            k = _checked_name(k)
        # The common scalars inline (no call each), the rest through _norm.
        t = type(x)
        if t is float or (t is str and x.isascii()) or t is bool or x is None:
            out[k] = x
            continue
        if x is UNSET:
            continue
        try:
            out[k] = _norm(x, depth, max_depth)
        except _Invalid as exc:
            exc.segments.append(k)
            raise
    if len(out) > MAX_OBJECT_FIELDS:
        raise _Invalid(
            f"is an object with {len(out)} fields; the limit is {MAX_OBJECT_FIELDS} "
            "(use an array of objects, or split it across documents)"
        )
    return out


def _checked_name(k: object) -> str:
    if not isinstance(k, str):
        raise _Invalid(
            f"has a key {k!r} of type {_type_name(k)}; object keys must be str "
            "(convert keys with str(k))"
        )
    name = str.__str__(k)
    problem = _field_name_problem(name)
    if problem is not None:
        raise _Invalid(f"has a field name {_short(name)} that {problem}")
    _remember(name)
    return name


def _too_deep(max_depth: int) -> _Invalid:
    return _Invalid(
        f"is nested more than {max_depth} levels deep; flatten the structure "
        "(or check it for a reference cycle)"
    )


def _norm_other(v: object, depth: int, max_depth: int) -> Value:
    """Subclasses of the basic types, and everything that is not a value."""
    if isinstance(v, Int64):
        return Int64(int(v))
    if isinstance(v, int) and not isinstance(v, bool):
        return _plain_int(int(v))
    if isinstance(v, float):
        return float(v)
    if isinstance(v, str):
        s = str.__str__(v)
        if not s.isascii():
            _check_unicode(s)
        return s
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v)
    if isinstance(v, list | tuple):
        return _norm_list(v, depth, max_depth)
    if isinstance(v, dict):
        return _norm_dict(v, depth, max_depth)
    raise _Invalid(f"is a {_type_name(v)}, which is not a Convex value; {_hint(v)}")


def _hint(v: object) -> str:
    if isinstance(v, set | frozenset):
        return "use a list"
    name = type(v).__name__
    if name in ("datetime", "date", "Timestamp"):
        return (
            "use a float of milliseconds since the epoch (dt.timestamp() * 1000) or an ISO string"
        )
    if name in ("Decimal", "Fraction"):
        return "use float(x), or str(x) to keep every digit"
    if name == "UUID":
        return "use str(x)"
    if hasattr(type(v), "__index__"):
        return "use float(x), or Int64(int(x)) for a 64-bit integer"
    if hasattr(type(v), "__float__"):
        return "use float(x)"
    if isinstance(v, Iterable):
        return "convert it with list(x)"
    return (
        "convert it to a dict, list, str, float, bool, bytes or None (Int64(x) for 64-bit integers)"
    )


def _type_name(v: object) -> str:
    t = type(v)
    if t.__module__ == "builtins":
        return t.__qualname__
    return f"{t.__module__}.{t.__qualname__}"


def _short(s: str, limit: int = 40) -> str:
    return repr(s) if len(s) <= limit else repr(s[:limit]) + f"... ({len(s)} chars)"
