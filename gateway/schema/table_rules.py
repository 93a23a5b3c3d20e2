"""Convex's rules for table names and indexes, with Convex's messages.

Texts come from ``crates/common/src/bootstrap_model/index/index_validation_error.rs``
and the order of checks from ``schemas/json.rs`` (``TableDefinition`` parsing):
table name, index count, each index (name, fields), index uniqueness, search indexes,
then index names (reserved, duplicated); last, with schema validation on, every
indexed field must be one the document validator allows.
"""

from __future__ import annotations

from gateway.errors import SchemaDefinitionError
from gateway.schema.base import Validator
from gateway.schema.compound import ObjectValidator, UnionValidator
from gateway.schema.identifiers import identifier_problem, parse_field_path
from gateway.schema.scalars import AnyValidator
from gateway.schema.table import TableDefinition

__all__ = [
    "MAX_INDEXES_PER_TABLE",
    "MAX_INDEX_FIELDS",
    "MAX_SEARCH_FILTER_FIELDS",
    "MAX_SEARCH_INDEXES_PER_TABLE",
    "can_contain_field",
    "check_index_references",
    "check_table",
    "check_table_name",
]

MAX_INDEXES_PER_TABLE = 64
#: Fields of a database index, counting the implicit ``_creationTime``.
MAX_INDEX_FIELDS = 16
MAX_SEARCH_FILTER_FIELDS = 16
MAX_SEARCH_INDEXES_PER_TABLE = 4

_RESERVED_INDEX_NAMES = ("by_id", "by_creation_time")


def _fail(message: str) -> SchemaDefinitionError:
    return SchemaDefinitionError(message)


def check_table_name(name: str) -> None:
    if not isinstance(name, str):
        raise TypeError(f"table names are strings, not {name!r}")
    if identifier_problem(name) is not None:
        raise _fail(
            f'Invalid table name: "{name}". Identifiers must start with a letter and can only '
            "contain letters, digits, and underscores."
        )
    if name.startswith("_"):
        raise _fail(f"{name} is a reserved table name.")


def _index_name_problem(name: str) -> str | None:
    if identifier_problem(name) is None:
        return None
    return (
        f'Invalid index name: "{name}". Identifiers must be 64 characters or less, start with '
        "a letter, and only contain letters, digits, underscores."
    )


def _field_problem(index: str, field: str) -> str | None:
    """Why ``field`` cannot be an indexed field (without the ``In table`` prefix)."""
    parts = parse_field_path(field)
    if parts is None:
        return f'In index "{index}": Invalid index field: "{field}"'
    if parts == ("_id",):
        return (
            f'In index "{index}": `_id` is not a valid index field. To load documents by ID, '
            "use `db.get(id)`."
        )
    if parts == ("_creationTime",):
        return (
            f'In index "{index}": `_creationTime` is automatically added to the end of each '
            "index. It should not be added explicitly in the index definition. See "
            "https://docs.convex.dev/using/indexes for more details."
        )
    if parts[0].startswith("_"):
        return (
            f'In index "{index}": Reserved fields (starting with `_`) are not allowed in indexes.'
        )
    return None


def _dotted(field: str) -> str:
    parts = parse_field_path(field)
    return ".".join(parts) if parts is not None else field


def _check_db_index(table: str, name: str, fields: tuple[str, ...]) -> None:
    problem = _index_name_problem(name)
    if problem is not None:
        raise _fail(f'In table "{table}": {problem}')
    for field in fields:
        problem = _field_problem(name, field)
        if problem is not None:
            raise _fail(f'In table "{table}": {problem}')
    if len(fields) + 1 > MAX_INDEX_FIELDS:
        raise _fail(
            f'In table "{table}": In index "{name}": Indexes may have up to '
            f"{MAX_INDEX_FIELDS} fields."
        )
    seen: set[str] = set()
    for field in fields:
        path = _dotted(field)
        if path in seen:
            raise _fail(
                f'In table "{table}": In index "{name}": Duplicate field "{path}". Index fields '
                "must be unique within an index."
            )
        seen.add(path)
    if not fields:
        raise _fail(f'In table "{table}" index "{name}" must have at least one field.')


def _check_search_index(table: str, name: str, search_field: str, filters: tuple[str, ...]) -> None:
    problem = _index_name_problem(name)
    if problem is not None:
        raise _fail(f'In table "{table}": {problem}')
    for field in (search_field, *filters):
        problem = _field_problem(name, field)
        if problem is not None:
            raise _fail(f'In table "{table}": {problem}')
    if len(filters) > MAX_SEARCH_FILTER_FIELDS:
        raise _fail(
            f'In table "{table}": Search indexes may have up to {MAX_SEARCH_FILTER_FIELDS} '
            "filter fields."
        )


def check_table(table: str, definition: TableDefinition) -> None:
    """Raise ``SchemaDefinitionError`` if ``definition`` breaks one of Convex's rules."""
    check_table_name(table)
    indexes = definition.declared_indexes()
    searches = definition.declared_search_indexes()
    if len(indexes) + len(searches) > MAX_INDEXES_PER_TABLE:
        raise _fail(f'Table "{table}" cannot have more than {MAX_INDEXES_PER_TABLE} indexes.')

    for name, fields in indexes:
        _check_db_index(table, name, fields)
    by_fields: dict[tuple[str, ...], str] = {}
    for name, fields in sorted(dict(indexes).items()):
        key = tuple(_dotted(f) for f in fields)
        other = by_fields.setdefault(key, name)
        if other != name:
            raise _fail(
                f'In table "{table}" index "{name}" and index "{other}" have the same fields. '
                "Indexes must be unique within a table."
            )

    for name, index in searches:
        _check_search_index(table, name, index.search_field, index.filter_fields)
    by_search_field: dict[str, str] = {}
    for name, index in sorted(dict(searches).items()):
        other = by_search_field.setdefault(_dotted(index.search_field), name)
        if other != name:
            raise _fail(
                f'In table "{table}" search index "{name}" and search index "{other}" have the '
                "same `searchField`. Search index fields must be unique within a table. You "
                "should combine the\n             indexes with the same `searchField` into one "
                "index containing all `filterField`s and then use different subsets of the "
                "`filterField`s at query time."
            )
    if len(searches) > MAX_SEARCH_INDEXES_PER_TABLE:
        raise _fail(
            f'Table "{table}" cannot have more than {MAX_SEARCH_INDEXES_PER_TABLE} search indexes.'
        )

    seen: set[str] = set()
    for name in [n for n, _ in indexes] + [n for n, _ in searches]:
        if name.startswith("_") or name in _RESERVED_INDEX_NAMES:
            raise _fail(
                f'In table "{table}" cannot name an index "{name}" because the name is reserved. '
                'Indexes may not start with an underscore or be named "by_id" or '
                '"by_creation_time".'
            )
        if name in seen:
            raise _fail(f'Table "{table}" has two or more definitions of index "{name}".')
        seen.add(name)


def can_contain_field(validator: Validator, path: tuple[str, ...]) -> bool:
    """Whether a document that passes ``validator`` can have a value at ``path``."""
    if not path:
        return True
    if isinstance(validator, AnyValidator):
        return True
    if isinstance(validator, UnionValidator):
        return any(can_contain_field(m, path) for m in validator.members)
    if isinstance(validator, ObjectValidator):
        field = validator.field(path[0])
        return field is not None and can_contain_field(field[0], path[1:])
    return False


def check_index_references(table: str, definition: TableDefinition) -> None:
    """With schema validation on: every indexed field must be possible in a document."""
    referenced: list[tuple[str, str]] = []
    for name, fields in sorted(definition.indexes.items()):
        referenced.extend((name, f) for f in fields)
    searches = sorted(definition.search_indexes.items())
    referenced.extend((name, index.search_field) for name, index in searches)
    for name, index in searches:
        referenced.extend((name, f) for f in sorted(index.filter_fields))
    validator = definition.document_validator
    for name, field in referenced:
        parts = parse_field_path(field)
        if parts is None or (len(parts) == 1 and parts[0].startswith("_")):
            continue
        if not can_contain_field(validator, parts):
            raise _fail(
                f'In table "{table}" the index "{name}" is invalid because it references the '
                f'field "{".".join(parts)}" that does not exist.'
            )
