"""``Schema``: enforcement on writes, JSON form and fingerprint."""

from __future__ import annotations

import json

import pytest
from schema_helpers import IDS, MESSAGE_ID, USER_ID

from gateway.errors import SchemaEnforcementError, ValidationError
from gateway.schema import Schema, define_schema, define_table, v
from gateway.values import UNSET, Int64


def readings_schema(*, schema_validation: bool = True) -> Schema:
    return define_schema(
        {
            "readings": define_table(
                {
                    "device": v.string(),
                    "celsius": v.float64(),
                    "seq": v.optional(v.int64()),
                    "owner": v.optional(v.id("users")),
                }
            ).index("by_device", ["device"]),
            "users": define_table({"name": v.string()}),
            "blobs": define_table(v.any()),
        },
        schema_validation=schema_validation,
    )


def refused(schema: Schema, table: str, doc: dict[str, object]) -> str:
    with pytest.raises(SchemaEnforcementError) as info:
        schema.validate_document(table, doc, IDS)
    return str(info.value)


def test_schema_exposes_tables_and_flags() -> None:
    schema = readings_schema()
    assert set(schema.tables) == {"readings", "users", "blobs"}
    assert schema.schema_validation is True
    assert schema.strict_table_name_types is False
    assert schema.tables["readings"].indexes == {"by_device": ("device",)}


def test_matching_document_passes_and_is_normalised() -> None:
    schema = readings_schema()
    doc = {"device": "d1", "celsius": 21, "seq": 3, "owner": USER_ID}
    checked = schema.validate_document("readings", doc, IDS)
    assert checked == {"device": "d1", "celsius": 21.0, "seq": Int64(3), "owner": USER_ID}
    assert type(checked["celsius"]) is float and type(checked["seq"]) is Int64


def test_system_fields_are_skipped_and_kept() -> None:
    schema = readings_schema()
    doc = {"_id": USER_ID, "name": "ada", "_creationTime": 1.5}
    assert schema.validate_document("users", doc, IDS) == doc
    assert list(schema.validate_document("users", doc, IDS)) == ["_id", "name", "_creationTime"]


def test_unset_fields_are_dropped() -> None:
    schema = readings_schema()
    doc = {"device": "d", "celsius": 1.0, "seq": UNSET}
    assert schema.validate_document("readings", doc, IDS) == {"device": "d", "celsius": 1.0}


def test_missing_field_message() -> None:
    assert refused(readings_schema(), "users", {"_id": USER_ID}) == (
        'Failed to insert or update a document in table "users" because it does not match the '
        "schema: Object is missing the required field `name`. Consider wrapping the field "
        "validator in `v.optional(...)` if this is expected.\n\nObject: {}\n"
        "Validator: v.object({name: v.string()})"
    )


def test_extra_field_message() -> None:
    assert refused(readings_schema(), "users", {"name": "ada", "nick": "a"}) == (
        'Failed to insert or update a document in table "users" because it does not match the '
        "schema: Object contains extra field `nick` that is not in the validator.\n\n"
        'Object: {name: "ada", nick: "a"}\nValidator: v.object({name: v.string()})'
    )


def test_wrong_value_message() -> None:
    assert refused(readings_schema(), "readings", {"device": "d", "celsius": "hot"}) == (
        'Failed to insert or update a document in table "readings" because it does not match '
        'the schema: Value does not match validator.\nPath: .celsius\nValue: "hot"\n'
        "Validator: v.float64()"
    )


def test_wrong_table_id_message() -> None:
    doc = {"device": "d", "celsius": 1.0, "owner": MESSAGE_ID}
    assert refused(readings_schema(), "readings", doc) == (
        'Failed to insert or update a document in table "readings" because it does not match '
        f'the schema: Found ID "{MESSAGE_ID}" from table `messages`, which does not match the '
        'table name in validator `v.id("users")`.Path: .owner'
    )


def test_int64_field_refuses_a_float() -> None:
    message = refused(readings_schema(), "readings", {"device": "d", "celsius": 1.0, "seq": 2.0})
    assert message.endswith("Path: .seq\nValue: 2.0\nValidator: v.int64()")


def test_enforcement_error_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        readings_schema().validate_document("users", {}, IDS)


def test_union_document_validator() -> None:
    schema = define_schema(
        {
            "events": define_table(
                v.union(
                    v.object({"kind": v.literal("temp"), "celsius": v.float64()}),
                    v.object({"kind": v.literal("door"), "open": v.boolean()}),
                )
            )
        }
    )
    assert schema.validate_document("events", {"kind": "door", "open": True}) == {
        "kind": "door",
        "open": True,
    }
    assert refused(schema, "events", {"kind": "door", "open": 1}) == (
        'Failed to insert or update a document in table "events" because it does not match the '
        'schema: Value does not match validator.\n\nValue: {kind: "door", open: 1.0}\n'
        'Validator: v.union(v.object({celsius: v.float64(), kind: v.literal("temp")}), '
        'v.object({kind: v.literal("door"), open: v.boolean()}))'
    )


def test_any_table_and_unknown_table_are_not_checked() -> None:
    schema = readings_schema()
    doc = {"whatever": [1, 2]}
    assert schema.validate_document("blobs", doc, IDS) is doc
    assert schema.validate_document("not_in_schema", doc, IDS) is doc


def test_schema_validation_off_checks_nothing() -> None:
    schema = readings_schema(schema_validation=False)
    doc = {"device": 5}
    assert schema.validate_document("readings", doc, IDS) is doc


def test_to_json_is_convex_shape() -> None:
    schema = define_schema(
        {
            "notes": define_table({"body": v.string(), "site": v.string()})
            .index("by_site", ["site"])
            .search_index("search_body", search_field="body", filter_fields=["site"])
            .replicate("up")
            .retention(max_rows=10),
        }
    )
    assert schema.to_json() == {
        "tables": [
            {
                "tableName": "notes",
                "indexes": [{"indexDescriptor": "by_site", "fields": ["site"]}],
                "searchIndexes": [
                    {
                        "indexDescriptor": "search_body",
                        "searchField": "body",
                        "filterFields": ["site"],
                    }
                ],
                "vectorIndexes": [],
                "documentType": {
                    "type": "object",
                    "value": {
                        "body": {"fieldType": {"type": "string"}, "optional": False},
                        "site": {"fieldType": {"type": "string"}, "optional": False},
                    },
                },
                "replication": "up",
                "retention": {"maxAgeS": None, "maxRows": 10, "maxBytes": None},
            }
        ],
        "schemaValidation": True,
    }
    json.dumps(schema.to_json(), allow_nan=False)


def test_fingerprint_is_stable_across_declaration_order() -> None:
    a = define_schema(
        {
            "x": define_table({"a": v.string(), "b": v.float64()})
            .index("by_a", ["a"])
            .index("by_b", ["b"]),
            "y": define_table({"c": v.literal(Int64(3))}),
        }
    )
    b = define_schema(
        {
            "y": define_table({"c": v.literal(Int64(3))}),
            "x": define_table({"b": v.float64(), "a": v.string()})
            .index("by_b", ["b"])
            .index("by_a", ["a"]),
        }
    )
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 64


@pytest.mark.parametrize(
    "change",
    [
        lambda: define_table({"a": v.string(), "b": v.float64()}).index("by_a", ["a"]),
        lambda: (
            define_table({"a": v.string(), "b": v.int64()})
            .index("by_a", ["a"])
            .index("by_b", ["b"])
        ),
        lambda: (
            define_table({"a": v.string(), "b": v.float64()})
            .index("by_a", ["a"])
            .index("by_b", ["b"])
            .replicate("up")
        ),
        lambda: (
            define_table({"a": v.string(), "b": v.float64()})
            .index("by_a", ["a"])
            .index("by_b", ["b"])
            .retention(max_rows=1)
        ),
    ],
)
def test_fingerprint_changes_with_the_schema(change: object) -> None:
    base = define_schema(
        {
            "x": define_table({"a": v.string(), "b": v.float64()})
            .index("by_a", ["a"])
            .index("by_b", ["b"])
        }
    )
    other = define_schema({"x": change()})  # type: ignore[operator]
    assert base.fingerprint() != other.fingerprint()
    flag = define_schema(
        {
            "x": define_table({"a": v.string(), "b": v.float64()})
            .index("by_a", ["a"])
            .index("by_b", ["b"])
        },
        schema_validation=False,
    )
    assert flag.fingerprint() != base.fingerprint()
