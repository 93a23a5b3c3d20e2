"""The ``Validator`` base class, the id resolver protocol and Convex's message texts.

A failed check raises the internal ``Mismatch``; its text is rendered only when it
reaches a caller (a union tries members and throws most failures away). The public
``Validator.validate`` turns it into ``gateway.errors.ValidationError``.

Message layouts are Convex's ``ValidationError`` display strings
(``crates/common/src/schemas/validator.rs``). The path context is ``Path: .a[3].b``
and is left empty at the top level, which leaves an empty line in the multi-line
forms and nothing at all after the one-line forms (``...`v.id("y")`.Path: .a``).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from gateway.errors import ValidationError
from gateway.schema.display import display_value
from gateway.values import Value

__all__ = [
    "NO_TABLES",
    "IdResolver",
    "Mismatch",
    "StaticIdResolver",
    "Validator",
    "extra_field",
    "missing_field",
    "path_context",
]


class IdResolver(Protocol):
    """Maps the table number inside a document id to its table name."""

    def table_name(self, table_number: int) -> str | None:
        """The name of table ``table_number`` (system tables start with ``_``), or ``None``."""
        ...


class StaticIdResolver:
    """An ``IdResolver`` over a fixed ``{table_number: table_name}`` mapping."""

    def __init__(self, tables: Mapping[int, str] | None = None) -> None:
        self._tables = dict(tables or {})

    def table_name(self, table_number: int) -> str | None:
        return self._tables.get(table_number)


#: Knows no tables: every ``v.id`` check fails as "not an id of this table".
NO_TABLES = StaticIdResolver()


class Mismatch(Exception):
    """Internal: a value failed a validator; ``render()`` builds Convex's message."""

    def __init__(self, render: Callable[[], str]) -> None:
        super().__init__()
        self.render = render


def path_context(path: str) -> str:
    return f"Path: {path}" if path else ""


def _no_match(value: object, validator: Validator, path: str) -> Mismatch:
    return Mismatch(
        lambda: (
            "Value does not match validator.\n"
            f"{path_context(path)}\n"
            f"Value: {display_value(value)}\n"
            f"Validator: {validator}"
        )
    )


def missing_field(field: str, obj: dict[str, Any], validator: Validator, path: str) -> Mismatch:
    return Mismatch(
        lambda: (
            f"Object is missing the required field `{field}`. Consider wrapping the field "
            "validator in `v.optional(...)` if this is expected.\n"
            f"{path_context(path)}\n"
            f"Object: {display_value(obj)}\n"
            f"Validator: {validator}"
        )
    )


def extra_field(field: str, obj: dict[str, Any], validator: Validator, path: str) -> Mismatch:
    return Mismatch(
        lambda: (
            f"Object contains extra field `{field}` that is not in the validator.\n"
            f"{path_context(path)}\n"
            f"Object: {display_value(obj)}\n"
            f"Validator: {validator}"
        )
    )


class Validator(ABC):
    """A Convex validator: checks (and normalises) a value; prints and serialises like Convex.

    Build them with ``v``; ``str(validator)`` is Convex's spelling (``v.string()``,
    ``v.object({a: v.float64()})``) and ``to_json()`` Convex's wire JSON.
    """

    _json_key: str | None = None

    def validate(self, value: Value, path: str = "", ids: IdResolver | None = None) -> Value:
        """``value`` checked against this validator, normalised.

        A plain ``int`` becomes a ``float`` where a Float64 is expected and an ``Int64``
        where ``v.int64()`` asks for one; object fields set to ``UNSET`` are dropped.
        ``path`` prefixes the paths in messages (``""`` at the top); ``ids`` resolves
        the table of ids for ``v.id`` (none known when omitted).

        Raises ``ValidationError`` whose text is Convex's message.
        """
        try:
            return self._check(value, path, ids if ids is not None else NO_TABLES, False)
        except Mismatch as m:
            raise ValidationError(m.render()) from None

    def matches(self, value: Value, ids: IdResolver | None = None) -> bool:
        """Whether ``value`` passes this validator (no message is built)."""
        try:
            self._check(value, "", ids if ids is not None else NO_TABLES, False)
        except Mismatch:
            return False
        return True

    @abstractmethod
    def _check(self, value: Value, path: str, ids: IdResolver, strict_ints: bool) -> Value:
        """Check ``value`` at ``path``; return it normalised or raise ``Mismatch``.

        With ``strict_ints`` a plain ``int`` is only ever a Float64 (a union tries its
        members that way first, so ``v.union(v.int64(), v.float64())`` reads ``5`` as
        the Float64 it is); without it ``v.int64()`` also takes a plain ``int``.
        """

    @abstractmethod
    def to_json(self) -> dict[str, Any]:
        """Convex's wire JSON for this validator (``{"type": "string"}``...)."""

    @abstractmethod
    def __str__(self) -> str:
        """Convex's spelling, as used in messages."""

    def no_match(self, value: object, path: str) -> Mismatch:
        return _no_match(value, self, path)

    def __repr__(self) -> str:
        return str(self)

    def _key(self) -> str:
        key = self._json_key
        if key is None:
            key = type(self).__name__ + json.dumps(self.to_json(), sort_keys=True)
            self._json_key = key
        return key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Validator):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())
