"""``validate_args`` / ``validate_returns``: Convex's prefixed messages."""

from __future__ import annotations

import pytest
from schema_helpers import IDS, MESSAGE_ID, USER_ID

from gateway.errors import (
    ArgumentValidationError,
    ReturnsValidationError,
    SchemaDefinitionError,
    ValidationError,
)
from gateway.schema import (
    as_args_validator,
    pagination_opts,
    pagination_result,
    v,
    validate_args,
    validate_returns,
)
from gateway.values import Int64


def test_unvalidated_args_pass_through() -> None:
    args = {"anything": [1, 2]}
    assert validate_args(None, args) is args
    assert validate_args(v.any(), args) is args


def test_args_dict_and_object_forms_agree() -> None:
    spec = {"device": v.string(), "seq": v.optional(v.int64())}
    args = {"device": "d1", "seq": 4}
    assert validate_args(spec, args) == {"device": "d1", "seq": Int64(4)}
    assert validate_args(v.object(spec), args) == {"device": "d1", "seq": Int64(4)}


def test_args_with_ids() -> None:
    assert validate_args({"u": v.id("users")}, {"u": USER_ID}, IDS) == {"u": USER_ID}


def test_empty_args_must_be_empty() -> None:
    assert validate_args({}, {}) == {}
    with pytest.raises(ArgumentValidationError) as info:
        validate_args({}, {"x": 1})
    assert str(info.value) == (
        "ArgumentValidationError: Object contains extra field `x` that is not in the "
        "validator.\n\nObject: {x: 1.0}\nValidator: v.object({})"
    )


def test_args_missing_field() -> None:
    with pytest.raises(ArgumentValidationError) as info:
        validate_args({"device": v.string()}, {})
    assert str(info.value) == (
        "ArgumentValidationError: Object is missing the required field `device`. Consider "
        "wrapping the field validator in `v.optional(...)` if this is expected.\n\n"
        "Object: {}\nValidator: v.object({device: v.string()})"
    )


def test_args_value_mismatch() -> None:
    with pytest.raises(ArgumentValidationError) as info:
        validate_args({"celsius": v.float64()}, {"celsius": "hot"})
    assert str(info.value) == (
        "ArgumentValidationError: Value does not match validator.\nPath: .celsius\n"
        'Value: "hot"\nValidator: v.float64()'
    )


def test_args_wrong_table_id() -> None:
    with pytest.raises(ArgumentValidationError) as info:
        validate_args({"u": v.id("users")}, {"u": MESSAGE_ID}, IDS)
    assert str(info.value) == (
        f'ArgumentValidationError: Found ID "{MESSAGE_ID}" from table `messages`, which does '
        'not match the table name in validator `v.id("users")`.Path: .u'
    )


def test_args_not_an_object() -> None:
    with pytest.raises(ArgumentValidationError) as info:
        validate_args({"a": v.string()}, ["a"])
    assert str(info.value) == (
        "ArgumentValidationError: Expected to receive an object as the function's argument. "
        'Instead received: ["a"]'
    )


def test_argument_error_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        validate_args({"a": v.string()}, {})


def test_args_validator_must_be_object_or_any() -> None:
    with pytest.raises(SchemaDefinitionError) as info:
        as_args_validator(v.string())
    assert str(info.value) == "Args validator must be an object or any, not v.string()"
    assert as_args_validator(None) is None
    assert as_args_validator(v.any()) is None
    assert as_args_validator({"a": v.string()}) == v.object({"a": v.string()})


def test_returns_unvalidated_and_valid() -> None:
    assert validate_returns(None, {"x": 1}) == {"x": 1}
    assert validate_returns(v.null(), None) is None
    assert validate_returns(v.array(v.int64()), [1, 2]) == [Int64(1), Int64(2)]
    assert validate_returns({"n": v.float64()}, {"n": 1}) == {"n": 1.0}


def test_returns_mismatch() -> None:
    with pytest.raises(ReturnsValidationError) as info:
        validate_returns(v.array(v.string()), ["a", 2])
    assert str(info.value) == (
        "ReturnsValidationError: Value does not match validator.\nPath: [1]\nValue: 2.0\n"
        "Validator: v.string()"
    )


def test_returns_null_for_string() -> None:
    with pytest.raises(ReturnsValidationError) as info:
        validate_returns(v.string(), None)
    assert str(info.value) == (
        "ReturnsValidationError: Value does not match validator.\n\nValue: null\n"
        "Validator: v.string()"
    )


def test_pagination_opts_is_convex_validator() -> None:
    assert str(pagination_opts) == (
        "v.object({cursor: v.union(v.string(), v.null()), endCursor: v.optional(v.union("
        "v.string(), v.null())), id: v.optional(v.float64()), maximumBytesRead: v.optional("
        "v.float64()), maximumRowsRead: v.optional(v.float64()), numItems: v.float64()})"
    )
    opts = validate_args(
        {"paginationOpts": pagination_opts}, {"paginationOpts": {"numItems": 10, "cursor": None}}
    )
    assert opts == {"paginationOpts": {"numItems": 10.0, "cursor": None}}


def test_pagination_result() -> None:
    validator = pagination_result(v.object({"n": v.float64()}))
    page = {"page": [{"n": 1.0}], "isDone": True, "continueCursor": "c", "pageStatus": None}
    assert validate_returns(validator, page) == page
