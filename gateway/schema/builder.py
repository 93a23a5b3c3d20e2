"""``v``: the validator builders, spelled as in Convex (``v.string()``, ``v.object({...})``)."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.schema.base import Validator
from gateway.schema.compound import (
    ArrayValidator,
    ObjectValidator,
    OptionalValidator,
    RecordValidator,
    UnionValidator,
)
from gateway.schema.scalars import (
    AnyValidator,
    BooleanValidator,
    BytesValidator,
    Float64Validator,
    IdValidator,
    Int64Validator,
    LiteralValidator,
    NullValidator,
    StringValidator,
)

__all__ = ["as_validator", "v"]

_STRING = StringValidator()
_FLOAT64 = Float64Validator()
_INT64 = Int64Validator()
_BOOLEAN = BooleanValidator()
_NULL = NullValidator()
_BYTES = BytesValidator()
_ANY = AnyValidator()


class _V:
    """The namespace behind ``v``; every builder returns a ``Validator``."""

    __slots__ = ()

    @staticmethod
    def string() -> StringValidator:
        return _STRING

    @staticmethod
    def float64() -> Float64Validator:
        return _FLOAT64

    @staticmethod
    def number() -> Float64Validator:
        """Same as ``v.float64()``."""
        return _FLOAT64

    @staticmethod
    def int64() -> Int64Validator:
        return _INT64

    @staticmethod
    def bigint() -> Int64Validator:
        """Same as ``v.int64()``."""
        return _INT64

    @staticmethod
    def boolean() -> BooleanValidator:
        return _BOOLEAN

    @staticmethod
    def null() -> NullValidator:
        return _NULL

    @staticmethod
    def bytes() -> BytesValidator:
        return _BYTES

    @staticmethod
    def any() -> AnyValidator:
        return _ANY

    @staticmethod
    def id(table: str) -> IdValidator:
        return IdValidator(table)

    @staticmethod
    def array(element: Validator) -> ArrayValidator:
        return ArrayValidator(element)

    @staticmethod
    def object(fields: Mapping[str, Validator]) -> ObjectValidator:
        return ObjectValidator(fields)

    @staticmethod
    def record(keys: Validator, values: Validator) -> RecordValidator:
        return RecordValidator(keys, values)

    @staticmethod
    def union(*members: Validator) -> UnionValidator:
        return UnionValidator(members)

    @staticmethod
    def literal(value: str | bool | float | int) -> LiteralValidator:
        return LiteralValidator(value)

    @staticmethod
    def optional(inner: Validator) -> OptionalValidator:
        return OptionalValidator(inner)

    @staticmethod
    def nullable(inner: Validator) -> UnionValidator:
        """``v.union(inner, v.null())``."""
        return UnionValidator((inner, _NULL))


v = _V()


def as_validator(spec: Mapping[str, Validator] | Validator) -> Validator:
    """``spec`` as a validator: a dict of field validators becomes ``v.object(spec)``."""
    if isinstance(spec, Validator):
        return spec
    if isinstance(spec, Mapping):
        return ObjectValidator(spec)
    raise TypeError(
        f"expected a validator or a dict of validators, not {type(spec).__name__} ({spec!r})"
    )
