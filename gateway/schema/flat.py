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

from collections.abc import Iterator, Mapping
from typing import Any, Final

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
from gateway.values import MAX_DOCUMENT_BYTES, MAX_OBJECT_FIELDS, Int64, decode_id, is_field_name

__all__ = ["FlatObjectCheck", "compile_flat", "plain_document"]

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
        if type(value) is not dict:
            return None
        size = self._fields_size(value, iter(value.items()), len(value), ids)
        return None if size is None else (value, size)

    def document(self, doc: Any, ids: IdResolver) -> bool:
        """Whether ``doc``, in a stored document's form (``_id``, ``_creationTime``, then
        the fields), is already what the full check would make of it, within the size
        limit. What a replication hub asks of a document an edge stored."""
        items = _past_system_fields(doc)
        if items is None:
            return False
        size = self._fields_size(doc, items, len(doc) - 2, ids)
        return size is not None and size + _SYSTEM_FIELDS_SIZE <= MAX_DOCUMENT_BYTES

    def _fields_size(
        self, value: dict[str, Any], items: Iterator[tuple[str, Any]], count: int, ids: IdResolver
    ) -> int | None:
        """The Convex size of ``value`` from the fields ``items`` (``count`` of them),
        or ``None`` if it takes the full check."""
        if not len(self._required) <= count <= self._max:
            return None
        fields = self._fields
        size = 2
        x: Any
        for name, x in items:
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
        if count < self._max and not all(name in value for name in self._required):
            return None
        return size


# ``_id`` (31 to 37 characters) and ``_creationTime`` with their names, at the most.
_SYSTEM_FIELDS_SIZE = (len("_id") + 1 + 2 + 37) + (len("_creationTime") + 1 + 9)


def _past_system_fields(doc: Any) -> Iterator[tuple[str, Any]] | None:
    """``doc``'s items after a leading ``_id`` (a string) and ``_creationTime`` (a
    float), or ``None`` if it does not start so."""
    if type(doc) is not dict or len(doc) < 2:
        return None
    items = iter(doc.items())
    (id_name, doc_id), (time_name, creation) = next(items), next(items)
    if id_name != "_id" or time_name != "_creationTime":
        return None
    if type(doc_id) is not str or type(creation) is not float:
        return None
    return items


_PLAIN_TYPES: Final = frozenset({float, bool, type(None)})


def plain_document(doc: Any, ids: IdResolver | None = None) -> bool:
    """``FlatObjectCheck.document`` for a table without a schema: fields of floats,
    booleans, nulls and ASCII strings only, with legal names, are a document as is."""
    items = _past_system_fields(doc)
    if items is None or len(doc) - 2 > MAX_OBJECT_FIELDS:
        return False
    size = 2
    for name, x in items:
        if name[:1] == "_" or not is_field_name(name):
            return False
        t = type(x)
        if t is str:
            if not x.isascii():
                return False
            size += len(name) + 3 + len(x)
        elif t in _PLAIN_TYPES:
            size += len(name) + 1 + _FIXED_SIZE[t]
        else:
            return False
    return size + _SYSTEM_FIELDS_SIZE <= MAX_DOCUMENT_BYTES


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
