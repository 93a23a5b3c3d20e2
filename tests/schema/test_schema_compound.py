"""Objects, arrays, records, unions and optional fields: results and Convex's messages."""

from __future__ import annotations

import pytest

from gateway.errors import ValidationError
from gateway.schema import v
from gateway.values import UNSET, Int64

PROFILE = v.object({"name": v.string(), "age": v.optional(v.int64())})
PROFILE_TEXT = "v.object({age: v.optional(v.int64()), name: v.string()})"


def message(validator: object, value: object) -> str:
    with pytest.raises(ValidationError) as info:
        validator.validate(value)  # type: ignore[attr-defined]
    return str(info.value)


# --- objects --------------------------------------------------------------------------


def test_object_accepts_and_normalises() -> None:
    assert PROFILE.validate({"name": "ada", "age": 36}) == {"name": "ada", "age": Int64(36)}
    assert PROFILE.validate({"name": "ada"}) == {"name": "ada"}


def test_optional_field_may_be_unset_and_is_dropped() -> None:
    assert PROFILE.validate({"name": "ada", "age": UNSET}) == {"name": "ada"}


def test_optional_field_is_not_nullable() -> None:
    assert message(PROFILE, {"name": "ada", "age": None}) == (
        "Value does not match validator.\nPath: .age\nValue: null\nValidator: v.int64()"
    )


def test_object_keeps_field_order_of_the_value() -> None:
    result = v.object({"a": v.float64(), "b": v.float64()}).validate({"b": 1, "a": 2})
    assert list(result) == ["b", "a"]


def test_missing_required_field_message() -> None:
    assert message(PROFILE, {"age": Int64(3)}) == (
        "Object is missing the required field `name`. Consider wrapping the field validator "
        "in `v.optional(...)` if this is expected.\n\n"
        "Object: {age: 3}\n"
        f"Validator: {PROFILE_TEXT}"
    )


def test_required_field_set_to_unset_is_missing() -> None:
    assert message(PROFILE, {"name": UNSET}).startswith(
        "Object is missing the required field `name`."
    )


def test_extra_field_message() -> None:
    assert message(PROFILE, {"name": "ada", "zzz": True, "nick": "a"}) == (
        "Object contains extra field `nick` that is not in the validator.\n\n"
        'Object: {name: "ada", nick: "a", zzz: true}\n'
        f"Validator: {PROFILE_TEXT}"
    )


def test_empty_object_validator_rejects_any_field() -> None:
    assert v.object({}).validate({}) == {}
    assert message(v.object({}), {"x": 1}) == (
        "Object contains extra field `x` that is not in the validator.\n\n"
        "Object: {x: 1.0}\nValidator: v.object({})"
    )


def test_fields_are_checked_in_name_order_before_extras() -> None:
    validator = v.object({"b": v.string(), "a": v.string()})
    # `a` is checked (and fails) before `b` is found missing or `c` found extra
    assert message(validator, {"a": 1, "c": 2}).startswith(
        "Value does not match validator.\nPath: .a\n"
    )
    assert message(validator, {"c": 2}).startswith("Object is missing the required field `a`.")


def test_nested_path_message() -> None:
    validator = v.object({"a": v.object({"b": v.string()})})
    assert message(validator, {"a": {"b": Int64(1)}}) == (
        "Value does not match validator.\nPath: .a.b\nValue: 1\nValidator: v.string()"
    )


def test_nested_missing_field_shows_its_path() -> None:
    validator = v.object({"a": v.object({"b": v.string()})})
    assert message(validator, {"a": {}}) == (
        "Object is missing the required field `b`. Consider wrapping the field validator "
        "in `v.optional(...)` if this is expected.\n"
        "Path: .a\n"
        "Object: {}\n"
        "Validator: v.object({b: v.string()})"
    )


def test_object_rejects_non_objects() -> None:
    assert message(PROFILE, ["ada"]) == (
        f'Value does not match validator.\n\nValue: ["ada"]\nValidator: {PROFILE_TEXT}'
    )
    assert not PROFILE.matches({1: "x"})


# --- arrays ---------------------------------------------------------------------------


def test_array_accepts_and_normalises() -> None:
    assert v.array(v.int64()).validate([1, Int64(2)]) == [Int64(1), Int64(2)]
    assert v.array(v.string()).validate([]) == []


def test_array_element_path_message() -> None:
    validator = v.object({"tags": v.array(v.string())})
    assert message(validator, {"tags": ["a", "b", "c", None]}) == (
        "Value does not match validator.\nPath: .tags[3]\nValue: null\nValidator: v.string()"
    )


def test_array_of_objects_path() -> None:
    validator = v.array(v.object({"x": v.float64()}))
    assert message(validator, [{"x": 1}, {"x": "no"}]) == (
        'Value does not match validator.\nPath: [1].x\nValue: "no"\nValidator: v.float64()'
    )


def test_array_rejects_tuple_and_unset_elements() -> None:
    assert not v.array(v.any()).matches((1, 2))
    assert message(v.array(v.any()), [UNSET]) == (
        "Value does not match validator.\nPath: [0]\nValue: undefined\nValidator: v.any()"
    )


# --- records --------------------------------------------------------------------------


def test_record_accepts_and_normalises() -> None:
    validator = v.record(v.string(), v.int64())
    assert validator.validate({"a": 1, "b": Int64(2)}) == {"a": Int64(1), "b": Int64(2)}
    assert validator.validate({}) == {}
    assert validator.validate({"a": UNSET}) == {}


def test_record_value_path_message() -> None:
    validator = v.object({"scores": v.record(v.string(), v.float64())})
    assert message(validator, {"scores": {"x": 1.0, "y": "bad"}}) == (
        "Value does not match validator.\nPath: .scores.values()\n"
        'Value: "bad"\nValidator: v.float64()'
    )


def test_record_key_path_message() -> None:
    validator = v.record(v.id("users"), v.boolean())
    assert message(validator, {"nope": True}) == (
        'Value does not match validator.\nPath: .keys()\nValue: "nope"\nValidator: v.id("users")'
    )


def test_record_rejects_non_objects() -> None:
    assert not v.record(v.string(), v.any()).matches([])


# --- unions ---------------------------------------------------------------------------


def test_union_first_match() -> None:
    validator = v.union(v.string(), v.float64())
    assert validator.validate("a") == "a"
    assert validator.validate(2) == 2.0


def test_union_message_does_not_combine_members() -> None:
    validator = v.object({"x": v.union(v.string(), v.null())})
    assert message(validator, {"x": 1}) == (
        "Value does not match validator.\nPath: .x\nValue: 1.0\n"
        "Validator: v.union(v.string(), v.null())"
    )


def test_union_of_one_reports_the_member() -> None:
    assert message(v.union(v.literal("a")), "b") == (
        '`"b"` does not match literal validator `v.literal("a")`.'
    )


def test_empty_union_matches_nothing() -> None:
    assert message(v.union(), None) == (
        "Value does not match validator.\n\nValue: null\nValidator: v.union()"
    )


def test_union_of_objects_reports_union_not_member() -> None:
    validator = v.union(
        v.object({"kind": v.literal("a"), "n": v.float64()}),
        v.object({"kind": v.literal("b")}),
    )
    assert validator.validate({"kind": "b"}) == {"kind": "b"}
    assert message(validator, {"kind": "c"}) == (
        'Value does not match validator.\n\nValue: {kind: "c"}\n'
        'Validator: v.union(v.object({kind: v.literal("a"), n: v.float64()}), '
        'v.object({kind: v.literal("b")}))'
    )


@pytest.mark.parametrize(
    ("members", "value", "expected"),
    [
        # a plain int is a Float64: a union prefers the Float64 reading...
        ((v.int64(), v.float64()), 5, 5.0),
        ((v.float64(), v.int64()), 5, 5.0),
        # ...and v.int64() takes it only when nothing else matches
        ((v.string(), v.int64()), 5, Int64(5)),
        ((v.int64(), v.float64()), Int64(5), Int64(5)),
        ((v.literal(5), v.int64()), 5, 5.0),
    ],
)
def test_union_plain_int_reading(
    members: tuple[object, ...], value: object, expected: object
) -> None:
    result = v.union(*members).validate(value)  # type: ignore[arg-type]
    assert result == expected and type(result) is type(expected)


def test_union_of_objects_prefers_float_reading_deeply() -> None:
    validator = v.union(v.object({"n": v.int64()}), v.object({"n": v.float64()}))
    result = validator.validate({"n": 5})
    assert type(result["n"]) is float
    only_int = v.union(v.object({"n": v.int64()}), v.object({"s": v.string()}))
    assert type(only_int.validate({"n": 5})["n"]) is Int64


def test_nullable_is_union_with_null() -> None:
    assert v.nullable(v.string()) == v.union(v.string(), v.null())
    assert v.nullable(v.string()).validate(None) is None
    assert str(v.nullable(v.string())) == "v.union(v.string(), v.null())"


# --- optional outside an object ---------------------------------------------------------


def test_optional_alone_checks_like_inner_and_passes_unset() -> None:
    opt = v.optional(v.string())
    assert opt.validate("x") == "x"
    assert opt.validate(UNSET) is UNSET
    assert not opt.matches(1)
    assert v.optional(v.optional(v.string())) == opt
