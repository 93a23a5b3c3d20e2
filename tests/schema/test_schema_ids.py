"""``v.id(table)``: not an id, another table's id, a system table's id."""

from __future__ import annotations

import pytest
from schema_helpers import IDS, MESSAGE_ID, STORAGE_ID, UNKNOWN_TABLE_ID, USER_ID, make_id

from gateway.errors import SchemaDefinitionError, ValidationError
from gateway.schema import StaticIdResolver, v

USERS = v.id("users")


def message(validator: object, value: object) -> str:
    with pytest.raises(ValidationError) as info:
        validator.validate(value, "", IDS)  # type: ignore[attr-defined]
    return str(info.value)


def test_id_of_the_table_passes() -> None:
    assert USERS.validate(USER_ID, "", IDS) == USER_ID


def test_not_an_id_is_a_plain_mismatch() -> None:
    assert message(USERS, "users:1") == (
        'Value does not match validator.\n\nValue: "users:1"\nValidator: v.id("users")'
    )
    assert (
        message(USERS, 5)
        == 'Value does not match validator.\n\nValue: 5.0\nValidator: v.id("users")'
    )


def test_mistyped_id_is_a_plain_mismatch() -> None:
    broken = USER_ID[:-1] + ("a" if USER_ID[-1] != "a" else "b")
    assert not USERS.matches(broken, IDS)


def test_id_of_unknown_table_is_a_plain_mismatch() -> None:
    assert message(USERS, UNKNOWN_TABLE_ID) == (
        f'Value does not match validator.\n\nValue: "{UNKNOWN_TABLE_ID}"\nValidator: v.id("users")'
    )


def test_id_of_another_table() -> None:
    assert message(USERS, MESSAGE_ID) == (
        f'Found ID "{MESSAGE_ID}" from table `messages`, which does not match the table name '
        'in validator `v.id("users")`.'
    )


def test_id_of_another_table_with_path() -> None:
    validator = v.object({"author": v.id("users")})
    assert message(validator, {"author": MESSAGE_ID}) == (
        f'Found ID "{MESSAGE_ID}" from table `messages`, which does not match the table name '
        'in validator `v.id("users")`.Path: .author'
    )


def test_id_of_a_system_table() -> None:
    assert message(v.array(USERS), [USER_ID, STORAGE_ID]) == (
        f'Found ID "{STORAGE_ID}" from a system table, which does not match the table name '
        'in validator `v.id("users")`.Path: [1]'
    )


def test_system_table_ids_are_valid_validators() -> None:
    assert v.id("_storage").validate(STORAGE_ID, "", IDS) == STORAGE_ID
    assert str(v.id("_scheduled_functions")) == 'v.id("_scheduled_functions")'
    assert message(v.id("_storage"), USER_ID) == (
        f'Found ID "{USER_ID}" from table `users`, which does not match the table name in '
        'validator `v.id("_storage")`.'
    )


def test_without_a_resolver_no_table_is_known() -> None:
    assert not USERS.matches(USER_ID)
    assert USERS.matches(USER_ID, StaticIdResolver({1: "users"}))
    assert USERS.matches(make_id(1, 99), IDS)


@pytest.mark.parametrize("bad", ["", "9users", "a-b", "x" * 65])
def test_bad_table_name_in_id_validator(bad: str) -> None:
    with pytest.raises(SchemaDefinitionError) as info:
        v.id(bad)
    assert str(info.value) == (
        f'Invalid table name: "{bad}". Identifiers must start with a letter and can only '
        "contain letters, digits, and underscores."
    )
