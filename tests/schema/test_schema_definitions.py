"""Validators Convex refuses to build, how validators print, and their wire JSON."""

from __future__ import annotations

import pytest

from gateway.errors import SchemaDefinitionError
from gateway.schema import Validator, as_validator, v
from gateway.values import Int64

# --- records ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys", [v.string(), v.id("users"), v.union(v.string(), v.id("users")), v.union(v.id("a"))]
)
def test_record_string_like_keys_allowed(keys: Validator) -> None:
    v.record(keys, v.any())


@pytest.mark.parametrize(
    ("keys", "shown"),
    [
        (v.any(), "v.any()"),
        (v.float64(), "v.float64()"),
        (v.union(v.string(), v.float64()), "v.union(v.string(), v.float64())"),
        (v.literal(5), "v.literal(5.0)"),
    ],
)
def test_record_non_string_keys_rejected(keys: Validator, shown: str) -> None:
    with pytest.raises(SchemaDefinitionError) as info:
        v.record(keys, v.any())
    assert str(info.value) == (
        "Records can only have string keys. Your validator contains a record with key typed "
        f"as `{shown}`, which is not a subtype of `v.string()`"
    )


@pytest.mark.parametrize("keys", [v.literal("a"), v.union(v.literal("a"), v.literal("b"))])
def test_record_literal_keys_rejected(keys: Validator) -> None:
    with pytest.raises(SchemaDefinitionError) as info:
        v.record(keys, v.any())
    assert str(info.value) == "Records cannot have string literal keys"


def test_record_optional_values_rejected() -> None:
    with pytest.raises(SchemaDefinitionError) as info:
        v.record(v.string(), v.optional(v.string()))
    assert str(info.value) == "Records cannot have optional values"


# --- optional only as an object field -----------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: v.array(v.optional(v.string())),
        lambda: v.union(v.string(), v.optional(v.null())),
        lambda: v.nullable(v.optional(v.string())),
    ],
)
def test_optional_outside_object_field_rejected(build: object) -> None:
    with pytest.raises(SchemaDefinitionError, match=r"only applies to a field of v\.object"):
        build()  # type: ignore[operator]


# --- object field names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("", "Identifier cannot be empty"),
        (
            "9lives",
            "Invalid first character '9' in 9lives: Identifiers must start with an alphabetic "
            "character or underscore",
        ),
        (
            "a-b",
            "Identifier a-b has invalid character '-': Identifiers can only contain "
            "alphanumeric characters or underscores",
        ),
        (
            "a.b",
            "Identifier a.b has invalid character '.': Identifiers can only contain "
            "alphanumeric characters or underscores",
        ),
        ("x" * 65, "Identifier is too long (65 > maximum 64)"),
        ("__", "Identifier __ cannot have exclusively underscores"),
    ],
)
def test_object_field_names_are_identifiers(name: str, text: str) -> None:
    with pytest.raises(SchemaDefinitionError) as info:
        v.object({name: v.string()})
    assert str(info.value) == text


def test_object_field_names_allowed() -> None:
    v.object({"_private": v.string(), "x" * 64: v.string(), "a_1": v.string()})


def test_wrong_python_types_are_type_errors() -> None:
    with pytest.raises(TypeError):
        v.object({"a": str})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        v.array("string")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        v.union(v.string(), int)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        as_validator(["a"])  # type: ignore[arg-type]


# --- printing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("validator", "text"),
    [
        (v.string(), "v.string()"),
        (v.float64(), "v.float64()"),
        (v.int64(), "v.int64()"),
        (v.boolean(), "v.boolean()"),
        (v.null(), "v.null()"),
        (v.bytes(), "v.bytes()"),
        (v.any(), "v.any()"),
        (v.id("t"), 'v.id("t")'),
        (v.array(v.float64()), "v.array(v.float64())"),
        (
            v.object({"b": v.optional(v.int64()), "a": v.string()}),
            "v.object({a: v.string(), b: v.optional(v.int64())})",
        ),
        (v.record(v.string(), v.array(v.null())), "v.record(v.string(), v.array(v.null()))"),
        (v.union(v.string(), v.literal(1)), "v.union(v.string(), v.literal(1.0))"),
        (v.optional(v.string()), "v.optional(v.string())"),
    ],
)
def test_validators_print_like_convex(validator: Validator, text: str) -> None:
    assert str(validator) == text
    assert repr(validator) == text


# --- wire JSON ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("validator", "json"),
    [
        (v.string(), {"type": "string"}),
        (v.float64(), {"type": "number"}),
        (v.int64(), {"type": "bigint"}),
        (v.boolean(), {"type": "boolean"}),
        (v.null(), {"type": "null"}),
        (v.bytes(), {"type": "bytes"}),
        (v.any(), {"type": "any"}),
        (v.id("users"), {"type": "id", "tableName": "users"}),
        (v.array(v.string()), {"type": "array", "value": {"type": "string"}}),
        (v.literal("a"), {"type": "literal", "value": "a"}),
        (v.literal(True), {"type": "literal", "value": True}),
        (v.literal(2), {"type": "literal", "value": 2.0}),
        (v.literal(Int64(1)), {"type": "literal", "value": {"$integer": "AQAAAAAAAAA="}}),
        (v.literal(Int64(-1)), {"type": "literal", "value": {"$integer": "//////////8="}}),
        (
            v.union(v.string(), v.null()),
            {"type": "union", "value": [{"type": "string"}, {"type": "null"}]},
        ),
        (
            v.record(v.id("users"), v.float64()),
            {
                "type": "record",
                "keys": {"type": "id", "tableName": "users"},
                "values": {"fieldType": {"type": "number"}, "optional": False},
            },
        ),
        (
            v.object({"a": v.string(), "b": v.optional(v.int64())}),
            {
                "type": "object",
                "value": {
                    "a": {"fieldType": {"type": "string"}, "optional": False},
                    "b": {"fieldType": {"type": "bigint"}, "optional": True},
                },
            },
        ),
        (v.optional(v.string()), {"type": "string"}),
    ],
)
def test_wire_json(validator: Validator, json: dict[str, object]) -> None:
    assert validator.to_json() == json


def test_equality_and_hash() -> None:
    assert v.object({"a": v.string()}) == v.object({"a": v.string()})
    assert v.object({"a": v.string()}) != v.object({"a": v.optional(v.string())})
    assert v.literal(True) != v.literal(1)
    assert v.literal(0.0) != v.literal(-0.0)
    assert v.optional(v.string()) != v.string()
    assert len({v.string(), v.string(), v.id("a"), v.id("a"), v.id("b")}) == 3
