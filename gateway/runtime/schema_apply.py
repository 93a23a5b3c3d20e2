"""Bringing the store's tables and indexes in line with ``convex/schema.py``.

Runs as one writer job before the app is served: new tables, indexes and search
indexes are created (and backfilled), removed ones dropped, and when the schema
changed, every stored document is checked against the new validators; the first
that fails is named and nothing is applied.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.errors import SchemaEnforcementError
from gateway.store import BY_CREATION_TIME, BY_ID, Transaction

_BUILT_IN = (BY_ID, BY_CREATION_TIME)
log = logging.getLogger("gateway.runtime")


def replication_of(schema: Any, *, outbox: bool = True) -> dict[str, Any]:
    """Each table's replication direction as the store applies it: as declared, but
    with ``outbox`` false (a hub with no upstream of its own) an ``up`` table is
    ``local``: what edges push into it has nowhere further to go, and an outbox nothing
    drains would only grow."""
    if schema is None:
        return {}
    modes = {name: getattr(t, "replication", "local") for name, t in schema.tables.items()}
    if not outbox:
        modes = {name: "local" if mode == "up" else mode for name, mode in modes.items()}
    return modes


def apply_schema(tx: Transaction, schema: Any, *, outbox: bool = True) -> bool:
    """Create, backfill and drop indexes; check documents if the schema changed.

    Returns True when anything in the store's layout changed.
    """
    if schema is None:
        return False
    before = tx.catalog
    for name in sorted(schema.tables):  # new tables get numbers in name order, not by accident
        if tx.catalog.table(name) is None:
            tx.create_table(name)
    for name, definition in schema.tables.items():
        _sync_indexes(tx, name, dict(definition.indexes))
        _sync_search_indexes(tx, name, dict(getattr(definition, "search_indexes", {})))
    tx.set_replication(replication_of(schema, outbox=outbox))
    fingerprint = schema.fingerprint()
    row = tx.conn.execute("SELECT value FROM meta WHERE key = 'schema_fingerprint'").fetchone()
    if row is None or row[0] != fingerprint:
        _check_documents(tx, schema)
        tx.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_fingerprint', ?)",
            (fingerprint,),
        )
    return tx.catalog is not before


def _sync_indexes(tx: Transaction, table: str, declared: dict[str, tuple[str, ...]]) -> None:
    info = tx.catalog.table(table)
    assert info is not None
    for name, index in info.indexes.items():
        if name in _BUILT_IN:
            continue
        if name not in declared or index.fields[:-2] != tuple(declared[name]):
            tx.drop_index(table, name)
    info = tx.catalog.table(table)
    assert info is not None
    for name, index_fields in declared.items():
        if name not in info.indexes:
            tx.create_index(table, name, tuple(index_fields))


def _sync_search_indexes(tx: Transaction, table: str, declared: dict[str, Any]) -> None:
    """Drop search indexes gone or redefined; create (and fill) the new ones."""
    info = tx.catalog.table(table)
    assert info is not None
    for name, ix in info.search.items():
        wanted = declared.get(name)
        if wanted is None or (ix.search_field, ix.filter_fields) != (
            wanted.search_field,
            tuple(wanted.filter_fields),
        ):
            tx.drop_search_index(table, name)
    info = tx.catalog.table(table)
    assert info is not None
    for name, wanted in declared.items():
        if name not in info.search:
            count = tx.create_search_index(
                table, name, wanted.search_field, tuple(wanted.filter_fields)
            )
            log.info("search index %s.%s built over %d documents", table, name, count)


class _Ids:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    def table_name(self, table_number: int) -> str | None:
        return self._tx.catalog.table_name(table_number)


def _check_documents(tx: Transaction, schema: Any) -> None:
    if not schema.schema_validation:
        return
    ids = _Ids(tx)
    for name in schema.tables:
        info = tx.catalog.table(name)
        assert info is not None
        index = info.indexes[BY_CREATION_TIME]
        for _key, _size, doc in tx.scan(index, b"", None):
            body = {k: v for k, v in doc.items() if k not in ("_id", "_creationTime")}
            try:
                schema.validate_document(name, body, ids)
            except SchemaEnforcementError as exc:
                raise SchemaEnforcementError(
                    f"Schema validation failed: document {doc['_id']} in table {name!r} does "
                    f"not match the new schema, so it was not applied. {exc}\n"
                    "Fix or delete that document (and any others like it), or loosen the "
                    "validator, then start again."
                ) from exc
