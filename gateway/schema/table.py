"""``define_table``: a table's document validator, indexes, replication and retention.

The chain methods record what is declared (and refuse wrong Python types at once);
Convex's rules on names and indexes are checked by ``define_schema``, which knows
the table's name and puts it in the messages (see ``table_rules``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self, get_args

from gateway.errors import SchemaDefinitionError
from gateway.schema.base import Validator
from gateway.schema.builder import as_validator
from gateway.schema.compound import ObjectValidator, UnionValidator
from gateway.schema.scalars import AnyValidator

__all__ = ["Replication", "Retention", "SearchIndex", "TableDefinition", "define_table"]

Replication = Literal["local", "up", "down"]

_SCHEMA_DOCS = (
    "To learn more, see the schema documentation at https://docs.convex.dev/database/schemas."
)


@dataclass(frozen=True)
class SearchIndex:
    """A full-text search index: one string field searched, equality filter fields."""

    search_field: str
    filter_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Retention:
    """How long a table's documents are kept on this box (never replicated as deletes)."""

    max_age_s: float | None = None
    max_rows: int | None = None
    max_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"maxAgeS": self.max_age_s, "maxRows": self.max_rows, "maxBytes": self.max_bytes}


def _without_system_fields(validator: ObjectValidator) -> ObjectValidator:
    # Convex drops top-level `_`-prefixed fields from a table's validator: `_id` and
    # `_creationTime` are implied, and documents cannot hold other `_` fields.
    system = [name for name in validator.fields if name.startswith("_")]
    return validator.without_fields(system) if system else validator


def _document_validator(spec: Mapping[str, Validator] | Validator) -> Validator:
    validator = as_validator(spec)
    if isinstance(validator, ObjectValidator):
        return _without_system_fields(validator)
    if isinstance(validator, AnyValidator):
        return validator
    if isinstance(validator, UnionValidator):
        members = []
        for member in validator.members:
            if not isinstance(member, ObjectValidator):
                raise SchemaDefinitionError(_bad_top_level(member))
            members.append(_without_system_fields(member))
        return UnionValidator(members)
    raise SchemaDefinitionError(_bad_top_level(validator))


def _bad_top_level(validator: Validator) -> str:
    return (
        "The document validator in a schema must be an object, a union of objects, or "
        f"`v.any()`. Found {validator}. {_SCHEMA_DOCS}"
    )


def _str_list(value: object, what: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{what} is a list of field paths (strings), not {value!r}")
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"{what} holds field paths (strings), not {item!r}")
    return tuple(value)


def _positive(value: object, what: str, *, integer: bool) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"retention {what} is a number, not {value!r}")
    if integer and not isinstance(value, int):
        raise SchemaDefinitionError(f"retention {what} must be a whole number, not {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise SchemaDefinitionError(f"retention {what} must be a positive number, not {value!r}")


class TableDefinition:
    """One table of a schema; build it with ``define_table`` and chain the methods."""

    def __init__(self, document_validator: Validator) -> None:
        self._document_validator = document_validator
        self._indexes: list[tuple[str, tuple[str, ...]]] = []
        self._search_indexes: list[tuple[str, SearchIndex]] = []
        self._replication: Replication = "local"
        self._retention: Retention | None = None

    # --- chain methods ----------------------------------------------------------------

    def index(self, name: str, fields: Sequence[str]) -> Self:
        """Declare index ``name`` on ``fields`` (dotted paths allowed); ``_creationTime``
        and ``_id`` are appended implicitly."""
        if not isinstance(name, str):
            raise TypeError(f"an index name is a string, not {name!r}")
        self._indexes.append((name, _str_list(fields, f"index {name!r} fields")))
        return self

    def search_index(
        self, name: str, *, search_field: str, filter_fields: Sequence[str] = ()
    ) -> Self:
        """Declare full-text search index ``name`` over the string field ``search_field``."""
        if not isinstance(name, str):
            raise TypeError(f"a search index name is a string, not {name!r}")
        if not isinstance(search_field, str):
            raise TypeError(f"search index {name!r} search_field is a string, not {search_field!r}")
        filters = _str_list(filter_fields, f"search index {name!r} filter_fields")
        unique = tuple(dict.fromkeys(filters))  # a set in Convex: duplicates collapse
        self._search_indexes.append((name, SearchIndex(search_field, unique)))
        return self

    def replicate(self, direction: Replication) -> Self:
        """``"up"``: owned here, sent upstream; ``"down"``: owned upstream, pulled here."""
        if direction not in get_args(Replication):
            raise SchemaDefinitionError(
                f'replicate() takes "up", "down" or "local", not {direction!r}'
            )
        self._replication = direction
        return self

    def retention(
        self,
        max_age_s: float | None = None,
        max_rows: int | None = None,
        max_bytes: int | None = None,
    ) -> Self:
        """Keep documents at most ``max_age_s`` seconds / the newest ``max_rows`` /
        ``max_bytes`` of them. Purges are local: never replicated as deletes."""
        _positive(max_age_s, "max_age_s", integer=False)
        _positive(max_rows, "max_rows", integer=True)
        _positive(max_bytes, "max_bytes", integer=True)
        if max_age_s is None and max_rows is None and max_bytes is None:
            raise SchemaDefinitionError(
                "retention() needs at least one of max_age_s, max_rows or max_bytes"
            )
        self._retention = Retention(max_age_s, max_rows, max_bytes)
        return self

    # --- what was declared --------------------------------------------------------------

    @property
    def document_validator(self) -> Validator:
        """An object validator, a union of them, or ``v.any()`` (system fields implied)."""
        return self._document_validator

    @property
    def indexes(self) -> dict[str, tuple[str, ...]]:
        """Index name -> declared fields, in declaration order (without ``_creationTime``)."""
        return dict(self._indexes)

    @property
    def search_indexes(self) -> dict[str, SearchIndex]:
        return dict(self._search_indexes)

    @property
    def replication(self) -> Replication:
        return self._replication

    @property
    def retention_policy(self) -> Retention | None:
        """What ``.retention(...)`` declared (the method owns the name ``retention``)."""
        return self._retention

    def declared_indexes(self) -> list[tuple[str, tuple[str, ...]]]:
        """Every ``.index`` call as made, duplicates included (for the rules check)."""
        return list(self._indexes)

    def declared_search_indexes(self) -> list[tuple[str, SearchIndex]]:
        return list(self._search_indexes)

    def to_json(self, table_name: str) -> dict[str, Any]:
        """Convex's ``TableDefinitionJson`` plus Outpost's replication and retention."""
        return {
            "tableName": table_name,
            "indexes": [
                {"indexDescriptor": name, "fields": list(fields)}
                for name, fields in sorted(self._indexes)
            ],
            "searchIndexes": [
                {
                    "indexDescriptor": name,
                    "searchField": index.search_field,
                    "filterFields": sorted(index.filter_fields),
                }
                for name, index in sorted(self._search_indexes, key=lambda item: item[0])
            ],
            "vectorIndexes": [],
            "documentType": self._document_validator.to_json(),
            "replication": self._replication,
            "retention": None if self._retention is None else self._retention.to_json(),
        }

    def __repr__(self) -> str:
        return f"define_table({self._document_validator})"


def define_table(fields: Mapping[str, Validator] | Validator) -> TableDefinition:
    """A table whose documents match ``fields`` (a dict of validators, a ``v.object``,
    a ``v.union`` of objects or ``v.any()``); ``_id`` and ``_creationTime`` are implied."""
    return TableDefinition(_document_validator(fields))
