"""``define_table`` / ``define_schema``: Convex's rules and messages for names and indexes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.errors import SchemaDefinitionError
from gateway.schema import TableDefinition, define_schema, define_table, v

FIELDS = {"device": v.string(), "site": v.string(), "celsius": v.float64(), "meta": v.any()}


def table() -> TableDefinition:
    return define_table(FIELDS)


def refused(tables: dict[str, TableDefinition], *, schema_validation: bool = True) -> str:
    with pytest.raises(SchemaDefinitionError) as info:
        define_schema(tables, schema_validation=schema_validation)
    return str(info.value)


# --- table names ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "9x", "a-b", "x" * 65, "__"])
def test_invalid_table_names(name: str) -> None:
    assert refused({name: table()}) == (
        f'Invalid table name: "{name}". Identifiers must start with a letter and can only '
        "contain letters, digits, and underscores."
    )


def test_reserved_table_name() -> None:
    assert refused({"_storage": table()}) == "_storage is a reserved table name."


def test_valid_table_names() -> None:
    define_schema({"x" * 64: table(), "Readings_2": table()})


# --- document validators -----------------------------------------------------------------


def test_document_validator_forms() -> None:
    assert define_table({"a": v.string()}).document_validator == v.object({"a": v.string()})
    assert define_table(v.any()).document_validator == v.any()
    union = v.union(v.object({"k": v.literal("a")}), v.object({"k": v.literal("b")}))
    assert define_table(union).document_validator == union


def test_system_fields_in_table_validator_are_implied() -> None:
    t = define_table({"_id": v.id("t"), "_creationTime": v.float64(), "a": v.string()})
    assert t.document_validator == v.object({"a": v.string()})


@pytest.mark.parametrize(
    ("validator", "shown"),
    [
        (v.string(), "v.string()"),
        (v.array(v.any()), "v.array(v.any())"),
        (v.union(v.object({}), v.null()), "v.null()"),
        (v.record(v.string(), v.any()), "v.record(v.string(), v.any())"),
    ],
)
def test_document_validator_must_be_object_union_or_any(validator: object, shown: str) -> None:
    with pytest.raises(SchemaDefinitionError) as info:
        define_table(validator)  # type: ignore[arg-type]
    assert str(info.value) == (
        "The document validator in a schema must be an object, a union of objects, or "
        f"`v.any()`. Found {shown}. To learn more, see the schema documentation at "
        "https://docs.convex.dev/database/schemas."
    )


# --- database indexes --------------------------------------------------------------------


def test_indexes_are_recorded_in_order() -> None:
    t = table().index("by_device", ["device"]).index("by_site_device", ["site", "device"])
    assert t.indexes == {"by_device": ("device",), "by_site_device": ("site", "device")}
    define_schema({"readings": t})


def test_dotted_index_fields_allowed() -> None:
    t = define_table({"loc": v.object({"site": v.string()})}).index("by_site", ["loc.site"])
    define_schema({"readings": t})


@pytest.mark.parametrize("name", ["9x", "a-b", "", "x" * 65])
def test_invalid_index_name(name: str) -> None:
    assert refused({"readings": table().index(name, ["device"])}) == (
        f'In table "readings": Invalid index name: "{name}". Identifiers must be 64 characters '
        "or less, start with a letter, and only contain letters, digits, underscores."
    )


@pytest.mark.parametrize("name", ["by_id", "by_creation_time", "_mine"])
def test_reserved_index_names(name: str) -> None:
    assert refused({"readings": table().index(name, ["device"])}) == (
        f'In table "readings" cannot name an index "{name}" because the name is reserved. '
        'Indexes may not start with an underscore or be named "by_id" or "by_creation_time".'
    )


def test_duplicate_index_names() -> None:
    t = table().index("by_x", ["device"]).index("by_x", ["site"])
    assert refused({"readings": t}) == (
        'Table "readings" has two or more definitions of index "by_x".'
    )


def test_search_and_database_index_names_share_a_namespace() -> None:
    t = table().index("by_x", ["device"]).search_index("by_x", search_field="device")
    assert refused({"readings": t}) == (
        'Table "readings" has two or more definitions of index "by_x".'
    )


def test_invalid_index_field() -> None:
    assert refused({"readings": table().index("by_x", ["a-b"])}) == (
        'In table "readings": In index "by_x": Invalid index field: "a-b"'
    )


def test_index_field_id() -> None:
    assert refused({"readings": table().index("by_x", ["_id"])}) == (
        'In table "readings": In index "by_x": `_id` is not a valid index field. To load '
        "documents by ID, use `db.get(id)`."
    )


def test_index_field_creation_time() -> None:
    assert refused({"readings": table().index("by_x", ["device", "_creationTime"])}) == (
        'In table "readings": In index "by_x": `_creationTime` is automatically added to the '
        "end of each index. It should not be added explicitly in the index definition. See "
        "https://docs.convex.dev/using/indexes for more details."
    )


def test_index_field_reserved() -> None:
    assert refused({"readings": table().index("by_x", ["_secret"])}) == (
        'In table "readings": In index "by_x": Reserved fields (starting with `_`) are not '
        "allowed in indexes."
    )


def test_duplicate_field_in_index() -> None:
    assert refused({"readings": table().index("by_x", ["device", "site", "device"])}) == (
        'In table "readings": In index "by_x": Duplicate field "device". Index fields must be '
        "unique within an index."
    )


def test_index_field_limit_counts_creation_time() -> None:
    fields = {f"f{i}": v.string() for i in range(16)}
    ok = define_table(fields).index("by_15", [f"f{i}" for i in range(15)])
    define_schema({"wide": ok})
    too_many = define_table(fields).index("by_16", [f"f{i}" for i in range(16)])
    assert refused({"wide": too_many}) == (
        'In table "wide": In index "by_16": Indexes may have up to 16 fields.'
    )


def test_empty_index() -> None:
    assert refused({"readings": table().index("by_nothing", [])}) == (
        'In table "readings" index "by_nothing" must have at least one field.'
    )


def test_two_indexes_on_the_same_fields() -> None:
    t = table().index("by_site", ["site", "device"]).index("by_a", ["site", "device"])
    assert refused({"readings": t}) == (
        'In table "readings" index "by_site" and index "by_a" have the same fields. Indexes '
        "must be unique within a table."
    )


def test_too_many_indexes() -> None:
    fields = {f"f{i}": v.string() for i in range(65)}
    t = define_table(fields)
    for i in range(64):
        t.index(f"i{i}", [f"f{i}"])
    define_schema({"big": t})
    t.index("i64", ["f64"])
    assert refused({"big": t}) == 'Table "big" cannot have more than 64 indexes.'


def test_index_on_field_not_in_schema() -> None:
    t = table().index("by_owner", ["owner"])
    assert refused({"readings": t}) == (
        'In table "readings" the index "by_owner" is invalid because it references the field '
        '"owner" that does not exist.'
    )
    # without schema validation the reference is not checked
    define_schema({"readings": t}, schema_validation=False)


def test_nested_index_field_must_exist() -> None:
    t = define_table({"loc": v.object({"site": v.string()})}).index("by_room", ["loc.room"])
    assert refused({"readings": t}) == (
        'In table "readings" the index "by_room" is invalid because it references the field '
        '"loc.room" that does not exist.'
    )


def test_index_field_may_exist_in_any_union_member_or_under_any() -> None:
    union = v.union(v.object({"a": v.string()}), v.object({"b": v.object({"c": v.string()})}))
    define_schema({"t": define_table(union).index("by_c", ["b.c"])})
    define_schema({"t": define_table({"blob": v.any()}).index("by_deep", ["blob.x.y"])})
    define_schema({"t": define_table(v.any()).index("by_a", ["a"])})
    optional = define_table({"a": v.optional(v.object({"b": v.string()}))}).index("by_b", ["a.b"])
    define_schema({"t": optional})


# --- search indexes ------------------------------------------------------------------------


def test_search_index_recorded() -> None:
    t = table().search_index("search_meta", search_field="device", filter_fields=["site", "site"])
    index = t.search_indexes["search_meta"]
    assert index.search_field == "device"
    assert index.filter_fields == ("site",)
    define_schema({"readings": t})


def test_search_index_bad_field() -> None:
    t = table().search_index("s", search_field="a b")
    assert (
        refused({"readings": t}) == 'In table "readings": In index "s": Invalid index field: "a b"'
    )


def test_search_index_filter_field_limit() -> None:
    fields = {f"f{i}": v.string() for i in range(18)}
    t = define_table(fields).search_index(
        "s", search_field="f17", filter_fields=[f"f{i}" for i in range(17)]
    )
    assert refused({"t": t}) == 'In table "t": Search indexes may have up to 16 filter fields.'


def test_search_indexes_on_same_field() -> None:
    t = table().search_index("s2", search_field="device").search_index("s1", search_field="device")
    assert refused({"readings": t}) == (
        'In table "readings" search index "s2" and search index "s1" have the same '
        "`searchField`. Search index fields must be unique within a table. You should combine "
        "the\n             indexes with the same `searchField` into one index containing all "
        "`filterField`s and then use different subsets of the `filterField`s at query time."
    )


def test_at_most_four_search_indexes() -> None:
    fields = {f"f{i}": v.string() for i in range(5)}
    t = define_table(fields)
    for i in range(4):
        t.search_index(f"s{i}", search_field=f"f{i}")
    define_schema({"docs": t})
    t.search_index("s4", search_field="f4")
    assert refused({"docs": t}) == 'Table "docs" cannot have more than 4 search indexes.'


def test_search_field_must_exist() -> None:
    t = table().search_index("s", search_field="device", filter_fields=["owner"])
    assert refused({"readings": t}) == (
        'In table "readings" the index "s" is invalid because it references the field '
        '"owner" that does not exist.'
    )


# --- chain methods: Python types, replication, retention -------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.index("by_x", "device"),
        lambda t: t.index("by_x", [1]),
        lambda t: t.index(5, ["device"]),
        lambda t: t.search_index("s", search_field=5),
        lambda t: t.search_index("s", search_field="device", filter_fields="site"),
        lambda t: t.retention(max_rows=True),
        lambda t: t.retention(max_age_s="1d"),
    ],
)
def test_wrong_python_types_fail_at_once(call: Callable[[TableDefinition], object]) -> None:
    with pytest.raises(TypeError):
        call(table())


def test_replication() -> None:
    assert table().replication == "local"
    assert table().replicate("up").replication == "up"
    assert table().replicate("down").replication == "down"
    with pytest.raises(SchemaDefinitionError) as info:
        table().replicate("sideways")  # type: ignore[arg-type]
    assert str(info.value) == 'replicate() takes "up", "down" or "local", not \'sideways\''


def test_retention() -> None:
    from gateway.schema import Retention

    assert table().retention_policy is None
    t = table().retention(max_age_s=7 * 86400)
    assert t.retention_policy == Retention(max_age_s=604800)
    t = table().retention(max_rows=1000, max_bytes=1 << 20)
    assert t.retention_policy == Retention(max_rows=1000, max_bytes=1 << 20)


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({}, "retention() needs at least one of max_age_s, max_rows or max_bytes"),
        ({"max_age_s": 0}, "retention max_age_s must be a positive number, not 0"),
        ({"max_age_s": -1.5}, "retention max_age_s must be a positive number, not -1.5"),
        ({"max_age_s": float("inf")}, "retention max_age_s must be a positive number, not inf"),
        ({"max_rows": 0}, "retention max_rows must be a positive number, not 0"),
        ({"max_rows": 1.5}, "retention max_rows must be a whole number, not 1.5"),
        ({"max_bytes": -10}, "retention max_bytes must be a positive number, not -10"),
    ],
)
def test_retention_rules(kwargs: dict[str, object], text: str) -> None:
    with pytest.raises(SchemaDefinitionError) as info:
        table().retention(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == text


def test_chain_returns_the_table() -> None:
    t = table()
    assert t.index("by_d", ["device"]).replicate("up").retention(max_rows=5) is t


def test_define_schema_wrong_types() -> None:
    with pytest.raises(TypeError):
        define_schema({"t": {"a": v.string()}})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        define_schema([table()])  # type: ignore[arg-type]
