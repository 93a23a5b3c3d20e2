"""Checking a function's arguments and return value against its validators.

Texts follow Convex: the validation message prefixed ``ArgumentValidationError: `` or
``ReturnsValidationError: ``; arguments are always one object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.errors import ArgumentValidationError, ReturnsValidationError, SchemaDefinitionError
from gateway.schema.base import NO_TABLES, IdResolver, Mismatch, Validator
from gateway.schema.builder import as_validator
from gateway.schema.compound import ObjectValidator
from gateway.schema.display import display_value
from gateway.schema.scalars import AnyValidator
from gateway.values import Value

__all__ = ["as_args_validator", "as_returns_validator", "validate_args", "validate_returns"]

ArgsSpec = Mapping[str, Validator] | Validator | None


def as_args_validator(spec: ArgsSpec) -> ObjectValidator | None:
    """A function's ``args`` as an object validator; ``None`` means not validated.

    Accepts a dict of validators, a ``v.object(...)``, ``v.any()`` or ``None``; call it
    when the function is defined so that a wrong ``args`` fails at load time.
    """
    if spec is None:
        return None
    validator = as_validator(spec)
    if isinstance(validator, ObjectValidator):
        return validator
    if isinstance(validator, AnyValidator):
        return None
    raise SchemaDefinitionError(f"Args validator must be an object or any, not {validator}")


def as_returns_validator(spec: ArgsSpec) -> Validator | None:
    """A function's ``returns`` as a validator (a dict means ``v.object``); ``None`` if absent."""
    return None if spec is None else as_validator(spec)


def validate_args(spec: ArgsSpec, args: Value, ids: IdResolver | None = None) -> Any:
    """``args`` checked against the function's ``args`` validators, normalised.

    ``spec`` is ``None`` (not validated: ``args`` is returned as is), a dict of
    validators (``{}`` accepts only an empty object) or a ``v.object(...)``.
    Raises ``ArgumentValidationError``.
    """
    validator = spec if isinstance(spec, ObjectValidator) else as_args_validator(spec)
    if validator is None:
        return args
    if not isinstance(args, dict):
        raise ArgumentValidationError(
            "ArgumentValidationError: Expected to receive an object as the function's "
            f"argument. Instead received: {display_value(args)}"
        )
    try:
        return validator._check(args, "", ids if ids is not None else NO_TABLES, False)
    except Mismatch as m:
        raise ArgumentValidationError(f"ArgumentValidationError: {m.render()}") from None


def validate_returns(spec: ArgsSpec, value: Value, ids: IdResolver | None = None) -> Value:
    """A function's return ``value`` checked against its ``returns`` validator, normalised.

    ``None`` as ``spec`` means not validated. Raises ``ReturnsValidationError``.
    """
    validator = spec if isinstance(spec, Validator) else as_returns_validator(spec)
    if validator is None:
        return value
    try:
        return validator._check(value, "", ids if ids is not None else NO_TABLES, False)
    except Mismatch as m:
        raise ReturnsValidationError(f"ReturnsValidationError: {m.render()}") from None
