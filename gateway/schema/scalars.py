"""Leaf validators: string, float64, int64, boolean, null, bytes, any, id and literal."""

from __future__ import annotations

import base64
import math
import struct
from typing import Any, TypeGuard

from gateway.errors import SchemaDefinitionError
from gateway.schema.base import IdResolver, Mismatch, Validator, path_context
from gateway.schema.display import display_value, float_json, json_str
from gateway.schema.identifiers import identifier_problem
from gateway.values import UNSET, Int64, Value, decode_id
from gateway.values.core import int_as_float

__all__ = [
    "AnyValidator",
    "BooleanValidator",
    "BytesValidator",
    "Float64Validator",
    "IdValidator",
    "Int64Validator",
    "LiteralValidator",
    "NullValidator",
    "StringValidator",
    "is_plain_int",
]


def is_plain_int(value: object) -> TypeGuard[int]:
    """A Python ``int`` that stands for a Float64: not a ``bool``, not an ``Int64``."""
    return isinstance(value, int) and not isinstance(value, (bool, Int64))


class StringValidator(Validator):
    def _check(self, value: Value, path: str, ids: IdResolver, strict_ints: bool) -> Value:
        if isinstance(value, str):
            return value
        raise self.no_match(value, path)

    def to_json(self) -> dict[str, Any]:
        return {"type": "string"}

    def __str__(self) -> str:
        return "v.string()"


class Float64Validator(Validator):
    """``v.float64()`` / ``v.number()``: a ``float``, or a plain ``int`` (returned as float)."""

    def _check(self, value: Value, path: str, ids: IdResolver, strict_ints: bool) -> Value:
        if isinstance(value, float):
            return value
        if is_plain_int(value):
            return int_as_float(value)
        raise self.no_match(value, path)

    def to_json(self) -> dict[str, Any]:
        return {"type": "number"}

    def __str__(self) -> str:
        return "v.float64()"


class Int64Validator(Validator):
    """``v.int64()`` / ``v.bigint()``: an ``Int64``, or a plain ``int`` turned into one."""

    def _check(self, value: Value, path: str, ids: IdResolver, strict_ints: bool) -> Value:
        if isinstance(value, Int64):
            return value
        if not strict_ints and is_plain_int(value) and -(1 << 63) <= value < (1 << 63):
            return Int64(value)
        raise self.no_match(value, path)

    def to_json(self) -> dict[str, Any]:
        return {"type": "bigint"}

    def __str__(self) -> str:
        return "v.int64()"


class BooleanValidator(Validator):
    def _check(self, value: Value, path: str, ids: IdResolver, strict_ints: bool) -> Value:
        if isinstance(value, bool):
            return value
        raise self.no_match(value, path)

    def to_json(self) -> dict[str, Any]:
        return {"type": "boolean"}

    def __str__(self) -> str:
        return "v.boolean()"


class NullValidator(Validator):
    def _check(self, value: Value, path: str, ids: IdResolver, strict_ints: bool) -> Value:
        if value is None:
            return None
        raise self.no_match(value, path)

    def to_json(self) -> dict[str, Any]:
        return {"type": "null"}

    def __str__(self) -> str:
        return "v.null()"


class BytesValidator(Validator):
    def _check(self, value: Value, path: str, ids: IdResolver, strict_ints: bool) -> Value:
        if isinstance(value, bytes):
            return value
        raise self.no_match(value, path)

    def to_json(self) -> dict[str, Any]:
        return {"type": "bytes"}

    def __str__(self) -> str:
        return "v.bytes()"


class AnyValidator(Validator):
    """``v.any()``: any value (``UNSET`` is not a value and fails)."""

    def _check(self, value: Value, path: str, ids: IdResolver, strict_ints: bool) -> Value:
        if value is UNSET:
            raise self.no_match(value, path)
        return value

    def to_json(self) -> dict[str, Any]:
        return {"type": "any"}

    def __str__(self) -> str:
        return "v.any()"


class IdValidator(Validator):
    """``v.id("t")``: a string that decodes as an id of table ``t`` (exactly)."""

    def __init__(self, table: str) -> None:
        if not isinstance(table, str):
            raise TypeError(f"v.id() takes a table name, not {type(table).__name__}")
        if identifier_problem(table) is not None:
            raise SchemaDefinitionError(
                f'Invalid table name: "{table}". Identifiers must start with a letter and '
                "can only contain letters, digits, and underscores."
            )
        self.table = table

    def _check(self, value: Value, path: str, ids: IdResolver, strict_ints: bool) -> Value:
        if not isinstance(value, str):
            raise self.no_match(value, path)
        try:
            table_number, _ = decode_id(value)
        except ValueError:  # InvalidIdError: not an id at all
            raise self.no_match(value, path) from None
        found = ids.table_name(table_number)
        if found is None:
            raise self.no_match(value, path)
        if found == self.table:
            return value
        expected = self.table
        if found.startswith("_"):
            raise Mismatch(
                lambda: (
                    f'Found ID "{value}" from a system table, which does not match the table '
                    f'name in validator `v.id("{expected}")`.{path_context(path)}'
                )
            )
        raise Mismatch(
            lambda: (
                f'Found ID "{value}" from table `{found}`, which does not match the table name '
                f'in validator `v.id("{expected}")`.{path_context(path)}'
            )
        )

    def to_json(self) -> dict[str, Any]:
        return {"type": "id", "tableName": self.table}

    def __str__(self) -> str:
        return f'v.id("{self.table}")'


def _float_bits(f: float) -> bytes:
    return struct.pack("<d", f)


class LiteralValidator(Validator):
    """``v.literal(x)``: exactly ``x`` (a string, boolean, Float64 or Int64).

    ``v.literal(5)`` is the Float64 5.0 (a plain ``int`` is a Float64) and matches
    ``5.0`` and ``5``; ``v.literal(Int64(5))`` matches only ``Int64(5)``. Float64
    equality is bitwise, as in Convex (``-0.0`` is not ``0.0``).
    """

    value: str | bool | float | Int64

    def __init__(self, value: object) -> None:
        if isinstance(value, (bool, str, Int64)):
            self.value = value
        elif isinstance(value, int):
            if not -(1 << 53) <= value <= 1 << 53:
                raise SchemaDefinitionError(
                    f"v.literal({value}): a plain int is a Float64 and must be within ±2^53; "
                    "use Int64(x) for an Int64 literal"
                )
            self.value = float(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise SchemaDefinitionError(
                    "Infinite or NaN values are not supported in literal validators."
                )
            self.value = value
        else:
            raise SchemaDefinitionError(f"Value {display_value(value)} is not a valid literal.")

    def _equal(self, value: object) -> bool:
        lit = self.value
        if isinstance(lit, bool):
            return isinstance(value, bool) and value is lit
        if isinstance(lit, str):
            return isinstance(value, str) and value == lit
        if isinstance(lit, Int64):
            return isinstance(value, Int64) and int(value) == int(lit)
        if isinstance(value, float):
            return _float_bits(value) == _float_bits(lit)
        if is_plain_int(value) and -(1 << 53) <= value <= 1 << 53:
            return _float_bits(float(value)) == _float_bits(lit)
        return False

    def _check(self, value: Value, path: str, ids: IdResolver, strict_ints: bool) -> Value:
        if self._equal(value):
            return self.value
        raise Mismatch(
            lambda: (
                f"`{display_value(value)}` does not match literal validator "
                f"`{self}`.{path_context(path)}"
            )
        )

    def literal_text(self) -> str:
        """The literal as Convex prints it inside ``v.literal(...)`` (JSON; Int64 hidden)."""
        lit = self.value
        if isinstance(lit, bool):
            return "true" if lit else "false"
        if isinstance(lit, str):
            return json_str(lit)
        if isinstance(lit, Int64):
            return "<bigint>"
        return float_json(lit)

    def to_json(self) -> dict[str, Any]:
        lit = self.value
        if isinstance(lit, Int64):
            encoded = base64.b64encode(struct.pack("<q", int(lit))).decode("ascii")
            return {"type": "literal", "value": {"$integer": encoded}}
        return {"type": "literal", "value": lit}

    def __str__(self) -> str:
        return f"v.literal({self.literal_text()})"
