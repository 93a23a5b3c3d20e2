"""A one-pass check for the most common shape: an object of plain scalar fields.

A sensor reading, a mutation's arguments: ``{"device": v.string(), "celsius":
v.float64(), ...}``. The full check walks validators field by field, builds a path
string for each in case of an error, copies the object, and then ``to_convex`` and
``convex_size`` walk it twice more. For an object whose every field holds exactly
the type its validator wants (a ``float`` for ``v.float64()``, an ASCII ``str`` for
``v.string()``...) none of that can change the value or fail, so this check only
looks at the types and adds up the Convex size on the way.

Anything it does not vouch for (a plain ``int`` for a float, non-ASCII text, a
nested value, an unknown field) makes it answer ``None``; the caller then runs the
full check, which normalises and words the error. It never rejects a value, so no
error message can differ from the full check's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.schema.base import IdResolver, Validator
from gateway.schema.scalars import (
    BooleanValidator,
    BytesValidator,
    Float64Validator,
    IdValidator,
    Int64Validator,
    NullValidator,
    StringValidator,
)
from gateway.values import MAX_OBJECT_FIELDS, Int64, decode_id

__all__ = ["FlatObjectCheck", "compile_flat"]

_FIXED_SIZE = {float: 9, Int64: 9, bool: 1, type(None): 1}
_TYPE_OF: dict[type[Validator], type] = {
    StringValidator: str,
    Float64Validator: float,
    Int64Validator: Int64,
    BooleanValidator: bool,
    NullValidator: type(None),
    BytesValidator: bytes,
    IdValidator: str,
}


class FlatObjectCheck:
    """Callable: ``(value, ids)`` -> ``(value, convex size)`` or ``None`` (ask the full check)."""

    def __init__(self, fields: Mapping[str, tuple[type, bool, str | None]]) -> None:
        # name -> (exact type, Convex size of the name plus a fixed-size value, id table)
        self._fields: dict[str, tuple[Any, int, str | None]] = {
            name: (kind, len(name.encode()) + 1 + _FIXED_SIZE.get(kind, 0), id_table)
            for name, (kind, _, id_table) in fields.items()
        }
        self._required = tuple(name for name, (_, optional, _) in fields.items() if not optional)
        self._max = len(self._fields)

    def __call__(self, value: Any, ids: IdResolver) -> tuple[dict[str, Any], int] | None:
        if type(value) is not dict or not len(self._required) <= len(value) <= self._max:
            return None
        fields = self._fields
        size = 2
        x: Any
        for name, x in value.items():
            spec = fields.get(name)
            if spec is None:
                return None
            kind, part, id_table = spec
            if kind is not type(x):
                return None
            if kind is str:
                if not x.isascii():
                    return None
                if id_table is not None and not _is_id_of(x, id_table, ids):
                    return None
                part += 2 + len(x)
            elif kind is bytes:
                part += 2 + len(x)
            size += part
        if len(value) < self._max and not all(name in value for name in self._required):
            return None
        return value, size


def _is_id_of(text: str, table: str, ids: IdResolver) -> bool:
    try:
        number, _ = decode_id(text)
    except ValueError:
        return False
    return ids.table_name(number) == table


def compile_flat(fields: Mapping[str, tuple[Validator, bool]]) -> FlatObjectCheck | None:
    """The fast check for an object validator's ``fields`` (``name -> (validator,
    optional)``), or ``None`` when some field is not a plain scalar."""
    if len(fields) > MAX_OBJECT_FIELDS:
        return None
    spec: dict[str, tuple[type, bool, str | None]] = {}
    for name, (validator, optional) in fields.items():
        kind = _TYPE_OF.get(type(validator))
        if kind is None or name.startswith("_"):
            return None
        table = validator.table if isinstance(validator, IdValidator) else None
        spec[name] = (kind, optional, table)
    return FlatObjectCheck(spec)
