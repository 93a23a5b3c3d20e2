"""Validators built from others: optional, array, object, record and union."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gateway.errors import SchemaDefinitionError
from gateway.schema.base import IdResolver, Mismatch, Validator, extra_field, missing_field
from gateway.schema.flat import FlatObjectCheck, compile_flat
from gateway.schema.identifiers import identifier_problem
from gateway.schema.scalars import IdValidator, LiteralValidator, StringValidator
from gateway.values import UNSET, Value

__all__ = [
    "ArrayValidator",
    "ObjectValidator",
    "OptionalValidator",
    "RecordValidator",
    "UnionValidator",
]


def _required(x: object, where: str) -> Validator:
    """``x`` as a validator that may stand where a value must be present."""
    if not isinstance(x, Validator):
        raise TypeError(f"{where} takes validators (built with v.*), not {type(x).__name__}")
    if isinstance(x, OptionalValidator):
        raise SchemaDefinitionError(
            f"{where} cannot take {x}: v.optional(...) only applies to a field of v.object(...)"
        )
    return x


class OptionalValidator(Validator):
    """``v.optional(x)``: marks an object field that may be absent.

    Only meaningful as a field of ``v.object``; elsewhere it checks like ``x`` and
    lets ``UNSET`` through.
    """

    def __init__(self, inner: Validator) -> None:
        if not isinstance(inner, Validator):
            raise TypeError(f"v.optional() takes a validator, not {type(inner).__name__}")
        self.inner: Validator = inner.inner if isinstance(inner, OptionalValidator) else inner

    def _check(self, value: Value, path: str, ids: IdResolver, strict_ints: bool) -> Value:
        if value is UNSET:
            return UNSET
        return self.inner._check(value, path, ids, strict_ints)

    def to_json(self) -> dict[str, Any]:
        return self.inner.to_json()

    def __str__(self) -> str:
        return f"v.optional({self.inner})"


class ArrayValidator(Validator):
    """``v.array(x)``: a ``list`` whose every element matches ``x``."""

    def __init__(self, element: Validator) -> None:
        self.element = _required(element, "v.array()")

    def _check(self, value: Value, path: str, ids: IdResolver, strict_ints: bool) -> Value:
        if not isinstance(value, list):
            raise self.no_match(value, path)
        element = self.element
        return [element._check(x, f"{path}[{i}]", ids, strict_ints) for i, x in enumerate(value)]

    def to_json(self) -> dict[str, Any]:
        return {"type": "array", "value": self.element.to_json()}

    def __str__(self) -> str:
        return f"v.array({self.element})"


def _as_object(value: object) -> dict[str, Any] | None:
    """``value`` as an object with its ``UNSET`` fields dropped, or ``None`` if not one."""
    if not isinstance(value, dict):
        return None
    if UNSET not in value.values() and all(type(k) is str for k in value):
        return value  # the common case: nothing to drop, no copy
    out: dict[str, Any] = {}
    for k, x in value.items():
        if not isinstance(k, str):
            return None
        if x is not UNSET:
            out[k] = x
    return out


class ObjectValidator(Validator):
    """``v.object({...})``: exactly the declared fields; ``v.optional`` ones may be absent.

    Fields are checked in name order, then the first extra field is reported (as
    Convex does).
    """

    def __init__(self, fields: Mapping[str, Validator]) -> None:
        if not isinstance(fields, Mapping):
            raise TypeError(f"v.object() takes a dict of validators, not {type(fields).__name__}")
        checked: dict[str, tuple[Validator, bool]] = {}
        for name, field in fields.items():
            if not isinstance(name, str):
                raise TypeError(f"v.object() field names are strings, not {type(name).__name__}")
            problem = identifier_problem(name)
            if problem is not None:
                raise SchemaDefinitionError(problem)
            if not isinstance(field, Validator):
                raise TypeError(
                    f"v.object() field `{name}` takes a validator (built with v.*), "
                    f"not {type(field).__name__}"
                )
            if isinstance(field, OptionalValidator):
                checked[name] = (field.inner, True)
            else:
                checked[name] = (field, False)
        self._fields = checked
        self._order = sorted(checked)
        #: The one-pass check when every field is a plain scalar (else ``None``).
        self.flat: FlatObjectCheck | None = compile_flat(checked)

    @property
    def fields(self) -> dict[str, Validator]:
        """The declared fields; optional ones wrapped in ``OptionalValidator``."""
        return {
            name: OptionalValidator(validator) if optional else validator
            for name, (validator, optional) in self._fields.items()
        }

    def field(self, name: str) -> tuple[Validator, bool] | None:
        """``(validator, optional)`` of field ``name``, or ``None`` if it is not declared."""
        return self._fields.get(name)

    def without_fields(self, names: Iterable[str]) -> ObjectValidator:
        drop = set(names)
        return ObjectValidator({k: x for k, x in self.fields.items() if k not in drop})

    def _check(self, value: Value, path: str, ids: IdResolver, strict_ints: bool) -> Value:
        obj = _as_object(value)
        if obj is None:
            raise self.no_match(value, path)
        checked: dict[str, Any] = {}
        fields = self._fields
        for name in self._order:
            validator, optional = fields[name]
            if name in obj:
                checked[name] = validator._check(obj[name], f"{path}.{name}", ids, strict_ints)
            elif not optional:
                raise missing_field(name, obj, self, path)
        if len(checked) != len(obj):
            for name in sorted(obj):
                if name not in fields:
                    raise extra_field(name, obj, self, path)
        return {k: checked[k] for k in obj}

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "object",
            "value": {
                name: {"fieldType": validator.to_json(), "optional": optional}
                for name, (validator, optional) in self._fields.items()
            },
        }

    def __str__(self) -> str:
        parts = []
        for name in self._order:
            validator, optional = self._fields[name]
            shown = f"v.optional({validator})" if optional else str(validator)
            parts.append(f"{name}: {shown}")
        return "v.object({" + ", ".join(parts) + "})"


def _is_string_subtype(k: Validator) -> bool:
    if isinstance(k, (StringValidator, IdValidator)):
        return True
    if isinstance(k, LiteralValidator):
        return isinstance(k.value, str)
    if isinstance(k, UnionValidator):
        return all(_is_string_subtype(m) for m in k.members)
    return False


def _has_string_literal(k: Validator) -> bool:
    if isinstance(k, LiteralValidator):
        return isinstance(k.value, str)
    if isinstance(k, UnionValidator):
        return any(_has_string_literal(m) for m in k.members)
    return False


class RecordValidator(Validator):
    """``v.record(k, x)``: an object whose every key matches ``k`` and value ``x``.

    Keys may be ``v.string()``, ``v.id(...)`` or unions of those; values may not be
    optional (Convex's ``InvalidRecordType`` rules and texts).
    """

    def __init__(self, keys: Validator, values: Validator) -> None:
        if not isinstance(keys, Validator) or not isinstance(values, Validator):
            raise TypeError("v.record() takes two validators (keys, values)")
        if not _is_string_subtype(keys):
            raise SchemaDefinitionError(
                "Records can only have string keys. Your validator contains a record with key "
                f"typed as `{keys}`, which is not a subtype of `v.string()`"
            )
        if _has_string_literal(keys):
            raise SchemaDefinitionError("Records cannot have string literal keys")
        if isinstance(values, OptionalValidator):
            raise SchemaDefinitionError("Records cannot have optional values")
        self.keys = keys
        self.values = values

    def _check(self, value: Value, path: str, ids: IdResolver, strict_ints: bool) -> Value:
        obj = _as_object(value)
        if obj is None:
            raise self.no_match(value, path)
        checked: dict[str, Any] = {}
        keys, values = self.keys, self.values
        for k in sorted(obj):
            keys._check(k, f"{path}.keys()", ids, strict_ints)
            checked[k] = values._check(obj[k], f"{path}.values()", ids, strict_ints)
        return {k: checked[k] for k in obj}

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "record",
            "keys": self.keys.to_json(),
            "values": {"fieldType": self.values.to_json(), "optional": False},
        }

    def __str__(self) -> str:
        return f"v.record({self.keys}, {self.values})"


class UnionValidator(Validator):
    """``v.union(a, b, ...)``: the first member that matches.

    Members are tried reading plain ``int`` as Float64 only, then (if none matched)
    letting ``v.int64()`` take them; a failure reports the whole union, as Convex does.
    """

    def __init__(self, members: Iterable[Validator]) -> None:
        self.members = tuple(_required(m, "v.union()") for m in members)

    def _check(self, value: Value, path: str, ids: IdResolver, strict_ints: bool) -> Value:
        members = self.members
        if len(members) == 1:
            return members[0]._check(value, path, ids, strict_ints)
        for member in members:
            try:
                return member._check(value, path, ids, True)
            except Mismatch:
                pass
        if not strict_ints:
            for member in members:
                try:
                    return member._check(value, path, ids, False)
                except Mismatch:
                    pass
        raise self.no_match(value, path)

    def to_json(self) -> dict[str, Any]:
        return {"type": "union", "value": [m.to_json() for m in self.members]}

    def __str__(self) -> str:
        return "v.union(" + ", ".join(str(m) for m in self.members) + ")"
