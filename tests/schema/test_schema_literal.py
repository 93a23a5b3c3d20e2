"""``v.literal``: exact strings, booleans, Float64 (bitwise) and Int64."""

from __future__ import annotations

import pytest

from gateway.errors import SchemaDefinitionError, ValidationError
from gateway.schema import v
from gateway.values import Int64


def test_string_literal() -> None:
    lit = v.literal("on")
    assert lit.validate("on") == "on"
    assert not lit.matches("off")
    assert not lit.matches(1)


def test_float_literal_matches_float_and_plain_int() -> None:
    lit = v.literal(5)
    assert lit.validate(5.0) == 5.0
    result = lit.validate(5)
    assert result == 5.0 and type(result) is float
    assert not lit.matches(Int64(5))
    assert not lit.matches(5.5)


def test_int64_literal_matches_only_int64() -> None:
    lit = v.literal(Int64(5))
    assert lit.validate(Int64(5)) == Int64(5)
    assert not lit.matches(5)
    assert not lit.matches(5.0)
    assert not lit.matches(Int64(6))


def test_boolean_literal_is_not_a_number() -> None:
    assert v.literal(True).matches(True)
    assert not v.literal(True).matches(1)
    assert not v.literal(True).matches(1.0)
    assert not v.literal(1).matches(True)
    assert not v.literal(False).matches(0)


def test_float_literal_equality_is_bitwise() -> None:
    assert not v.literal(0.0).matches(-0.0)
    assert v.literal(-0.0).matches(-0.0)
    assert not v.literal(-0.0).matches(0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinite_literals_rejected(bad: float) -> None:
    with pytest.raises(SchemaDefinitionError) as info:
        v.literal(bad)
    assert str(info.value) == "Infinite or NaN values are not supported in literal validators."


@pytest.mark.parametrize(("bad", "shown"), [(None, "null"), ([1], "[1.0]"), (b"x", 'b"eA=="')])
def test_non_literal_values_rejected(bad: object, shown: str) -> None:
    with pytest.raises(SchemaDefinitionError) as info:
        v.literal(bad)  # type: ignore[arg-type]
    assert str(info.value) == f"Value {shown} is not a valid literal."


def test_plain_int_literal_beyond_2_53_rejected() -> None:
    with pytest.raises(SchemaDefinitionError):
        v.literal((1 << 53) + 1)


def test_literal_message_top_level() -> None:
    with pytest.raises(ValidationError) as info:
        v.literal("a").validate("b")
    assert str(info.value) == '`"b"` does not match literal validator `v.literal("a")`.'


def test_literal_message_with_path() -> None:
    obj = v.object({"kind": v.literal("a")})
    with pytest.raises(ValidationError) as info:
        obj.validate({"kind": 3})
    assert str(info.value) == (
        '`3.0` does not match literal validator `v.literal("a")`.Path: .kind'
    )


@pytest.mark.parametrize(
    ("literal", "text"),
    [
        ("a", 'v.literal("a")'),
        ('q"\n', 'v.literal("q\\"\\n")'),
        ("é", 'v.literal("é")'),
        (True, "v.literal(true)"),
        (False, "v.literal(false)"),
        (5, "v.literal(5.0)"),
        (0.5, "v.literal(0.5)"),
        (1e-6, "v.literal(1e-6)"),
        (Int64(5), "v.literal(<bigint>)"),
    ],
)
def test_literal_prints_like_convex(literal: object, text: str) -> None:
    assert str(v.literal(literal)) == text  # type: ignore[arg-type]


def test_int64_literal_message_hides_the_value() -> None:
    with pytest.raises(ValidationError) as info:
        v.literal(Int64(5)).validate(Int64(6))
    assert str(info.value) == "`6` does not match literal validator `v.literal(<bigint>)`."
