"""Which Python values each leaf validator accepts, and what it returns."""

from __future__ import annotations

import math

import pytest

from gateway.errors import ConvexValueError, ValidationError
from gateway.schema import Validator, v
from gateway.values import UNSET, Int64

# (validator, value, expected result) for accepted values
ACCEPTED: list[tuple[Validator, object, object]] = [
    (v.string(), "", ""),
    (v.string(), "héllo", "héllo"),
    (v.float64(), 1.5, 1.5),
    (v.float64(), 5, 5.0),
    (v.float64(), -(1 << 53), float(-(1 << 53))),
    (v.number(), 0, 0.0),
    (v.float64(), float("inf"), float("inf")),
    (v.float64(), -0.0, -0.0),
    (v.int64(), Int64(7), Int64(7)),
    (v.int64(), 7, Int64(7)),
    (v.int64(), (1 << 63) - 1, Int64((1 << 63) - 1)),
    (v.bigint(), -(1 << 63), Int64(-(1 << 63))),
    (v.boolean(), True, True),
    (v.boolean(), False, False),
    (v.null(), None, None),
    (v.bytes(), b"\x00\xff", b"\x00\xff"),
    (v.any(), {"a": [1, Int64(2)]}, {"a": [1, Int64(2)]}),
    (v.any(), None, None),
]

REJECTED: list[tuple[Validator, object]] = [
    (v.string(), 1),
    (v.string(), b"x"),
    (v.string(), None),
    (v.float64(), Int64(5)),
    (v.float64(), True),
    (v.float64(), "1.0"),
    (v.number(), False),
    (v.int64(), 5.0),
    (v.int64(), True),
    (v.int64(), 1 << 63),
    (v.int64(), "5"),
    (v.boolean(), 1),
    (v.boolean(), 0.0),
    (v.null(), 0),
    (v.null(), UNSET),
    (v.bytes(), "AQID"),
    (v.bytes(), bytearray(b"x")),
    (v.any(), UNSET),
]


@pytest.mark.parametrize(("validator", "value", "expected"), ACCEPTED)
def test_accepts(validator: Validator, value: object, expected: object) -> None:
    result = validator.validate(value)
    assert result == expected
    assert type(result) is type(expected)
    assert validator.matches(value)


@pytest.mark.parametrize(("validator", "value"), REJECTED)
def test_rejects(validator: Validator, value: object) -> None:
    with pytest.raises(ValidationError):
        validator.validate(value)
    assert not validator.matches(value)


def test_float64_keeps_nan() -> None:
    assert math.isnan(v.float64().validate(float("nan")))


def test_plain_int_beyond_2_53_is_not_a_float64() -> None:
    with pytest.raises(ConvexValueError):
        v.float64().validate((1 << 53) + 1)


def test_int64_result_is_an_int64_instance() -> None:
    assert isinstance(v.int64().validate(3), Int64)


def test_number_and_bigint_are_aliases() -> None:
    assert v.number() == v.float64()
    assert v.bigint() == v.int64()
    assert str(v.number()) == "v.float64()"
    assert str(v.bigint()) == "v.int64()"


def test_no_match_message_top_level() -> None:
    with pytest.raises(ValidationError) as info:
        v.string().validate(5)
    assert str(info.value) == "Value does not match validator.\n\nValue: 5.0\nValidator: v.string()"


def test_no_match_message_shows_int64_bare() -> None:
    with pytest.raises(ValidationError) as info:
        v.float64().validate(Int64(5))
    assert str(info.value) == "Value does not match validator.\n\nValue: 5\nValidator: v.float64()"


def test_no_match_message_with_path_argument() -> None:
    with pytest.raises(ValidationError) as info:
        v.boolean().validate("yes", ".flags[2]")
    assert str(info.value) == (
        'Value does not match validator.\nPath: .flags[2]\nValue: "yes"\nValidator: v.boolean()'
    )


def test_unset_is_undefined_in_messages() -> None:
    with pytest.raises(ValidationError) as info:
        v.any().validate(UNSET)
    assert str(info.value) == (
        "Value does not match validator.\n\nValue: undefined\nValidator: v.any()"
    )
