"""What tables and indexes exist: the store's in-memory map of its own layout.

A ``Catalog`` is never mutated once published: a transaction that creates a table or
an index works on a copy, and the writer publishes that copy only after COMMIT.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field, replace
from typing import Literal

Replication = Literal["local", "up", "down"]
BY_ID = "by_id"
BY_CREATION_TIME = "by_creation_time"
SYSTEM_FIELDS_KEY = ("_creationTime", "_id")


@dataclass(frozen=True)
class IndexInfo:
    """One index: its effective key is ``fields`` (system tiebreak included)."""

    index_id: int
    table_number: int
    name: str
    fields: tuple[str, ...]
    paths: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Split once: every write computes every index key of the document.
        object.__setattr__(self, "paths", tuple(tuple(f.split(".")) for f in self.fields))

    @property
    def virtual(self) -> bool:
        """``by_id`` is served by the documents table's primary key, not index rows."""
        return self.name == BY_ID


@dataclass(frozen=True)
class SearchIndexInfo:
    """One full-text search index: an FTS5 table ``fts_<index_id>`` and its row map.

    Its ``index_id`` comes from another range than ``IndexInfo``'s (it starts at
    ``SEARCH_ID_BASE``), so read sets can name both kinds without a clash.
    """

    index_id: int
    table_number: int
    name: str
    search_field: str
    filter_fields: tuple[str, ...]
    paths: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The search field first, then the filter fields: split once for every write.
        paths = (self.search_field, *self.filter_fields)
        object.__setattr__(self, "paths", tuple(tuple(f.split(".")) for f in paths))


SEARCH_ID_BASE = 1 << 40


@dataclass(frozen=True)
class TableInfo:
    """A table, its indexes and how it lives beyond the box."""

    number: int
    name: str
    indexes: dict[str, IndexInfo]
    replication: Replication = "local"
    search: dict[str, SearchIndexInfo] = field(default_factory=dict)

    @property
    def stored_indexes(self) -> list[IndexInfo]:
        """Indexes that have rows in the ``indexes`` table."""
        return [ix for ix in self.indexes.values() if not ix.virtual]


def by_id_index(table_number: int) -> IndexInfo:
    """The virtual ``by_id`` index; negative ids never collide with stored ones."""
    return IndexInfo(-table_number, table_number, BY_ID, ("_id",))


@dataclass(frozen=True)
class Catalog:
    """Tables by name and number, as of one committed state of the store."""

    by_name: dict[str, TableInfo] = field(default_factory=dict)
    by_number: dict[int, TableInfo] = field(default_factory=dict)
    replication: dict[str, Replication] = field(default_factory=dict)
    version: int = 0

    def table(self, name: str) -> TableInfo | None:
        return self.by_name.get(name)

    def table_name(self, number: int) -> str | None:
        info = self.by_number.get(number)
        return info.name if info else None

    def with_table(self, info: TableInfo) -> Catalog:
        """A copy with ``info`` added or replaced."""
        by_name = dict(self.by_name)
        by_number = dict(self.by_number)
        old = by_name.get(info.name)
        if old is not None:
            by_number.pop(old.number, None)
        by_name[info.name] = info
        by_number[info.number] = info
        return replace(self, by_name=by_name, by_number=by_number)

    def with_replication(self, replication: dict[str, Replication]) -> Catalog:
        """A copy where tables take the replication mode the schema declares."""
        by_name = {
            name: replace(info, replication=replication.get(name, "local"))
            for name, info in self.by_name.items()
        }
        by_number = {info.number: info for info in by_name.values()}
        return Catalog(by_name, by_number, dict(replication), self.version)

    def bumped(self) -> Catalog:
        """A copy with the next version number (written to meta by the caller)."""
        return replace(self, version=self.version + 1)


def load_catalog(
    conn: sqlite3.Connection,
    replication: dict[str, Replication] | None = None,
    *,
    version: int | None = None,
) -> Catalog:
    """Read the catalog as the connection's current snapshot sees it."""
    replication = replication or {}
    indexes: dict[int, dict[str, IndexInfo]] = {}
    for index_id, tbl, name, fields in conn.execute(
        "SELECT index_id, tbl, name, fields FROM index_defs"
    ):
        indexes.setdefault(tbl, {})[name] = IndexInfo(
            index_id, tbl, name, tuple(json.loads(fields))
        )
    search: dict[int, dict[str, SearchIndexInfo]] = {}
    for index_id, tbl, name, search_field, filters in conn.execute(
        "SELECT index_id, tbl, name, search_field, filter_fields FROM search_defs"
    ):
        search.setdefault(tbl, {})[name] = SearchIndexInfo(
            index_id, tbl, name, search_field, tuple(json.loads(filters))
        )
    by_name: dict[str, TableInfo] = {}
    for number, name in conn.execute("SELECT number, name FROM tables"):
        table_indexes = {BY_ID: by_id_index(number), **indexes.get(number, {})}
        by_name[name] = TableInfo(
            number, name, table_indexes, replication.get(name, "local"), search.get(number, {})
        )
    by_number = {info.number: info for info in by_name.values()}
    if version is None:
        row = conn.execute("SELECT value FROM meta WHERE key = 'catalog_version'").fetchone()
        version = int(row[0]) if row else 0
    return Catalog(by_name, by_number, dict(replication), version)
