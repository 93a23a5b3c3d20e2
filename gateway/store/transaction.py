"""One transaction's reads and writes against the SQLite layout.

A ``Transaction`` runs on the thread that owns its connection (the writer, or one
reader). Writes go straight into SQLite inside the writer's SAVEPOINT, so later reads
in the same mutation see them (read-your-writes) and a rollback undoes them. It
records what a commit must tell the rest of the gateway: every index key it changed
(old and new) and, for replicated tables, one collapsed change per document.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Final

from gateway.errors import StoreError
from gateway.store import search as fts
from gateway.store.catalog import (
    BY_CREATION_TIME,
    SYSTEM_FIELDS_KEY,
    Catalog,
    IndexInfo,
    SearchIndexInfo,
    TableInfo,
    by_id_index,
)
from gateway.store.fields import value_at
from gateway.store.pending import LOG_SQL, PendingWrites
from gateway.store.quota import OutboxQuota
from gateway.values import creation_id_key, decode_id, dumps, encode_index_key, loads

Document = dict[str, Any]
SCAN_CHUNK_ROWS = 128
# Ids per ``get_many`` statement (one JSON array parameter, so no bound-variable limit).
_MANY_IDS = 1000
_GET_MANY_SQL = "SELECT id, body FROM documents WHERE id IN (SELECT value FROM json_each(?))"


def index_key(index: IndexInfo, doc: Document) -> bytes:
    """The order-preserving key of ``doc`` in ``index``."""
    return encode_index_key([value_at(doc, path) for path in index.paths])


CATALOG_INDEX_ID = 0


def table_existence_key(table: str) -> tuple[int, bytes]:
    """The pseudo key a read of a missing table depends on (its creation changes it)."""
    return CATALOG_INDEX_ID, encode_index_key([table])


@dataclass
class DocChange:
    """The net effect of one transaction on one document."""

    table: str
    doc_id: str
    old: Document | None
    new: Document | None


class Transaction:
    """Reads and (on the writer) writes of one function execution."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        catalog: Catalog,
        ts: int,
        *,
        writable: bool,
        new_id: Callable[[int, int], str] | None = None,
        origin: str = "local",
        pending: PendingWrites | None = None,
        clock_trusted: bool = True,
        quota: OutboxQuota | None = None,
    ) -> None:
        self._conn = conn
        # The outbox's byte count and limit (``quota.py``); None on readers.
        self.quota = quota
        self._pending = pending
        self.catalog = catalog
        self.ts = ts
        self.writable = writable
        self.origin = origin
        # Whether the wall clock was trustworthy when ``ts`` was stamped (the HLC's
        # ``wall_trusted``); written with each outbox row, sent with each batch.
        self.clock_trusted = clock_trusted
        self.newest_creation_ms = 0.0  # the largest ``_creationTime`` ``insert`` was given
        self._new_id = new_id
        self.changed_keys: list[tuple[int, bytes]] = []
        self._changes: dict[str, DocChange] = {}
        self._base_version = catalog.version

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection, for any SQL at all: held rows are written first, so every
        statement sees this transaction's (and its batch's) earlier writes."""
        if self._pending is None:
            return self._conn
        return self._pending.direct()

    def interrupt(self) -> None:
        """Abort the running SQLite statement (from another thread: the watchdog)."""
        self._conn.interrupt()

    # --- reads ------------------------------------------------------------------------

    def get(self, doc_id: str) -> Document | None:
        row = self.conn.execute("SELECT body FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return None if row is None else _load(row[0])

    def scan(
        self, index: IndexInfo, start: bytes, end: bytes | None, *, descending: bool = False
    ) -> Iterator[tuple[bytes, int, Document]]:
        """(key, body size, document) of ``index`` with key in [start, end), lazily."""
        if index.virtual:
            yield from self._scan_by_id(index, start, end, descending)
            return
        lo, hi = start, end
        while True:
            rows = self._scan_chunk(index.index_id, lo, hi, descending)
            for key, body in rows:
                yield key, len(body), _load(body)
            if len(rows) < SCAN_CHUNK_ROWS:
                return
            last = rows[-1][0]
            if descending:
                hi = last
            else:
                lo = last + b"\x00"  # the smallest key greater than ``last``

    def _scan_chunk(
        self, index_id: int, lo: bytes, hi: bytes | None, descending: bool
    ) -> list[tuple[bytes, str]]:
        order = "DESC" if descending else "ASC"
        upper = "AND i.key < ?" if hi is not None else ""
        params: tuple[Any, ...] = (index_id, lo, hi) if hi is not None else (index_id, lo)
        sql = (
            "SELECT i.key, d.body FROM indexes i JOIN documents d ON d.id = i.doc_id "
            f"WHERE i.index_id = ? AND i.key >= ? {upper} ORDER BY i.key {order} "
            f"LIMIT {SCAN_CHUNK_ROWS}"
        )
        return self.conn.execute(sql, params).fetchall()

    def _scan_by_id(
        self, index: IndexInfo, start: bytes, end: bytes | None, descending: bool
    ) -> Iterator[tuple[bytes, int, Document]]:
        order = "DESC" if descending else "ASC"
        rows = self.conn.execute(
            f"SELECT id, body FROM documents WHERE tbl = ? ORDER BY id {order}",
            (index.table_number,),
        ).fetchall()
        for doc_id, body in rows:
            key = encode_index_key([doc_id])
            if key >= start and (end is None or key < end):
                yield key, len(body), _load(body)

    def search(
        self, ix: SearchIndexInfo, match: str, filters: dict[str, bytes], limit: int
    ) -> Iterator[tuple[int, Document]]:
        """(body size, document) of the best ``limit`` matches of ``ix``, best first."""
        for body in fts.search(self.conn, ix, match, filters, limit):
            yield len(body), _load(body)

    # --- writes -----------------------------------------------------------------------

    def insert(self, table: str, body: Document, creation_time: float) -> str:
        """Store a new document; returns its id. Creates the table on first insert."""
        self._check_writable()
        info = self.catalog.table(table) or self.create_table(table)
        assert self._new_id is not None
        doc_id = self._new_id(info.number, self.ts)
        if creation_time > self.newest_creation_ms:
            self.newest_creation_ms = creation_time
        self._add(info, {"_id": doc_id, "_creationTime": creation_time, **body})
        return doc_id

    def insert_existing(self, table: str, doc: Document) -> None:
        """Store a document that already has its ``_id`` and ``_creationTime`` (imports,
        a replication hub).

        The id must belong to ``table`` (its table number is inside it) and not exist
        yet (the caller checks: like an insert's, the row may be held back until the
        next read); every index of the table gets its row, and the change is recorded
        like any insert."""
        self._check_writable()
        info = self._require_table(table)
        doc_id = doc["_id"]
        if decode_id(doc_id)[0] != info.number:
            raise StoreError(f"{doc_id!r} is not an id of table {table!r} (number {info.number})")
        self._add(info, doc)

    def insert_existing_many(self, table: str, docs: list[Document]) -> None:
        """``insert_existing`` of each of ``docs`` (all of ``table``), in one loop: what a
        replication hub does a thousand times a batch. The same rows, keys and recorded
        changes as a call each (a test holds the two to that)."""
        self._check_writable()
        info = self._require_table(table)
        for doc in docs:
            if decode_id(doc["_id"])[0] != info.number:
                raise StoreError(f"{doc['_id']!r} is not an id of table {table!r}")
        outbox = self.quota is not None and self.catalog.replication.get(table) == "up"
        if self._pending is None or info.search or outbox:
            for doc in docs:  # the plain path: written now, indexed for search, or checked
                self._add(info, doc)
            return
        self._add_held(info, self._pending, docs)

    def _add_held(self, info: TableInfo, pending: PendingWrites, docs: list[Document]) -> None:
        """``_add`` of many documents held back in a batch, the lookups made once."""
        plan, number, ts, name = _insert_plan(info), info.number, self.ts, info.name
        held_docs, held_keys = pending.docs, pending.keys
        changed, changes = self.changed_keys, self._changes
        for doc in docs:
            doc_id = doc["_id"]
            held_docs.append((doc_id, number, ts, dumps(doc)))
            tail = creation_id_key(doc["_creationTime"], doc_id)
            for index_id, prefix, stored, ix in plan.keyed:
                key = _key(ix, prefix, doc, tail)
                changed.append((index_id, key))
                if stored:
                    held_keys.append((index_id, key, doc_id))
            change = changes.get(doc_id)
            if change is None:
                changes[doc_id] = DocChange(name, doc_id, None, doc)
            else:
                change.new = doc

    def get_many(self, doc_ids: list[str]) -> dict[str, Document]:
        """The documents of ``doc_ids`` that exist, by id, in one statement."""
        found: dict[str, Document] = {}
        for start in range(0, len(doc_ids), _MANY_IDS):
            chunk = json.dumps(doc_ids[start : start + _MANY_IDS])
            for doc_id, body in self.conn.execute(_GET_MANY_SQL, (chunk,)):
                found[doc_id] = _load(body)
        return found

    def _add(self, info: TableInfo, doc: Document) -> None:
        """A new document's row, index rows and search rows (held back in a batch)."""
        doc_id, creation_time = doc["_id"], doc["_creationTime"]
        pending = self._pending
        if pending is None:
            self._write_doc(info, doc, existed=False)
        else:
            pending.docs.append((doc_id, info.number, self.ts, dumps(doc)))
        plan = _insert_plan(info)
        # Every stored index ends with (_creationTime, _id): that key part is the same
        # for all of them, and a tuple's key is the concatenation of its parts' keys.
        tail = creation_id_key(creation_time, doc_id)
        changed = self.changed_keys
        rows: list[Any] = []
        for index_id, prefix, stored, ix in plan.keyed:
            key = _key(ix, prefix, doc, tail)
            changed.append((index_id, key))
            if stored:
                if pending is None:
                    rows += (index_id, key, doc_id)
                else:
                    pending.keys.append((index_id, key, doc_id))
        if rows:  # all index rows of the document in one statement
            self._conn.execute(plan.sql, rows)
        if info.search:
            if pending is None:
                self._search_write(info, None, doc)
            else:  # held back with the document (a new one: nothing to remove first)
                for six in info.search.values():
                    if fts.is_indexed(six, doc):
                        pending.search.append((six, doc))
                        changed.append((six.index_id, fts.CHANGE_KEY))
        self._record(info.name, doc_id, None, doc)

    def replace(self, table: str, old: Document, new: Document) -> bool:
        """Replace a document's body (system fields kept). False if nothing changed."""
        self._check_writable()
        info = self._require_table(table)
        doc_id = old["_id"]
        doc = {"_id": doc_id, "_creationTime": old["_creationTime"], **new}
        if dumps(doc) == dumps(old):
            return False
        self._write_doc(info, doc, existed=True)
        for ix in info.indexes.values():
            old_key, new_key = index_key(ix, old), index_key(ix, doc)
            if old_key != new_key:
                self._delete_key(ix, old_key)
                self._insert_key(ix, new_key, doc_id)
            else:  # the row stays, but readers of that key saw the old document
                self.changed_keys.append((ix.index_id, new_key))
        if info.search:
            self._search_write(info, old, doc)
        self._record(info.name, doc_id, old, doc)
        return True

    def delete(self, table: str, old: Document) -> None:
        self._check_writable()
        info = self._require_table(table)
        doc_id = old["_id"]
        self.conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        for ix in info.indexes.values():
            self._delete_key(ix, index_key(ix, old))
        if info.search:
            self._search_write(info, old, None)
        self._record(info.name, doc_id, old, None)

    def changes(self) -> list[DocChange]:
        """Net per-document changes so far (multiple writes collapse into one)."""
        return [c for c in self._changes.values() if not _same(c.old, c.new)]

    def finish(self) -> list[DocChange]:
        """Write change-log rows for replicated tables; call once, before RELEASE.

        Retention deletes (origin ``retention``) are not user deletes: no row."""
        changes = self.changes()
        rows = [
            (
                self.ts,
                _op(c),
                c.table,
                c.doc_id,
                None if c.new is None else dumps(c.new),
                self.origin,
                int(self.clock_trusted),
            )
            for c in changes
            if self.catalog.replication.get(c.table) == "up" and self.origin != "retention"
        ]
        if rows:
            if self.quota is not None:  # may drop the oldest entries
                self.quota.admit(lambda: self.conn, rows)
            if self._pending is not None:
                self._pending.log += rows
            else:
                self._conn.executemany(LOG_SQL, rows)
        return changes

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested sub-transaction: on an exception only its writes roll back."""
        keys = len(self.changed_keys)
        changes = {k: DocChange(c.table, c.doc_id, c.old, c.new) for k, c in self._changes.items()}
        catalog = self.catalog
        conn = self.conn  # held rows written: only this block's rows are held from here on
        mark = self._pending.mark() if self._pending is not None else None
        conn.execute("SAVEPOINT nested")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK TO nested")
            conn.execute("RELEASE nested")
            if self._pending is not None and mark is not None:
                self._pending.truncate(mark)
            del self.changed_keys[keys:]
            self._changes = changes
            self.catalog = catalog
            raise
        conn.execute("RELEASE nested")

    # --- layout changes -------------------------------------------------------------

    def create_table(self, name: str, number: int | None = None) -> TableInfo:
        """Add a table (with its built-in indexes) to this transaction's catalog copy."""
        self._check_writable()
        if number is None:
            row = self.conn.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM tables").fetchone()
            number = int(row[0])
        self.conn.execute("INSERT INTO tables (number, name) VALUES (?, ?)", (number, name))
        self.changed_keys.append(table_existence_key(name))
        info = TableInfo(
            number,
            name,
            {"by_id": by_id_index(number)},
            self.catalog.replication.get(name, "local"),
        )
        self._set_catalog(self.catalog.with_table(info))
        return self.create_index(name, BY_CREATION_TIME, ())

    def create_index(self, table: str, name: str, fields: tuple[str, ...]) -> TableInfo:
        """Add an index and backfill it from the table's documents."""
        info = self._require_table(table)
        effective = (*fields, *SYSTEM_FIELDS_KEY)
        cur = self.conn.execute(
            "INSERT INTO index_defs (tbl, name, fields) VALUES (?, ?, ?)",
            (info.number, name, json.dumps(list(effective))),
        )
        assert cur.lastrowid is not None
        ix = IndexInfo(cur.lastrowid, info.number, name, effective)
        rows = self.conn.execute("SELECT body FROM documents WHERE tbl = ?", (info.number,))
        self.conn.executemany(
            "INSERT INTO indexes (index_id, key, doc_id) VALUES (?, ?, ?)",
            (
                (ix.index_id, index_key(ix, doc), doc["_id"])
                for doc in map(_load, (r[0] for r in rows))
            ),
        )
        info = replace(info, indexes={**info.indexes, name: ix})
        self._set_catalog(self.catalog.with_table(info))
        return info

    def create_search_index(
        self, table: str, name: str, search_field: str, filter_fields: tuple[str, ...]
    ) -> int:
        """Add a search index and index the table's documents; returns how many."""
        info = self._require_table(table)
        conn = self.conn
        ix = fts.create(conn, info.number, name, search_field, list(filter_fields))
        # Streamed, not fetched whole: a big table on a Pi must not be held in memory.
        # Writing the FTS5 tables while this cursor reads ``documents`` is safe in SQLite.
        bodies = conn.execute("SELECT body FROM documents WHERE tbl = ?", (info.number,))
        count = fts.backfill(conn, ix, (r[0] for r in bodies))
        self._set_catalog(self.catalog.with_table(replace(info, search={**info.search, name: ix})))
        return count

    def drop_search_index(self, table: str, name: str) -> None:
        info = self._require_table(table)
        fts.drop(self.conn, info.search[name])
        rest = {k: v for k, v in info.search.items() if k != name}
        self._set_catalog(self.catalog.with_table(replace(info, search=rest)))

    def set_replication(self, replication: dict[str, Any]) -> None:
        """Tables take the replication direction the schema declares."""
        self.catalog = self.catalog.with_replication(replication)

    def drop_index(self, table: str, name: str) -> None:
        info = self._require_table(table)
        ix = info.indexes[name]
        self.conn.execute("DELETE FROM indexes WHERE index_id = ?", (ix.index_id,))
        self.conn.execute("DELETE FROM index_defs WHERE index_id = ?", (ix.index_id,))
        rest = {k: v for k, v in info.indexes.items() if k != name}
        self._set_catalog(self.catalog.with_table(replace(info, indexes=rest)))

    # --- internals --------------------------------------------------------------------

    def _set_catalog(self, catalog: Catalog) -> None:
        if catalog.version == self._base_version:
            catalog = catalog.bumped()
            self.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('catalog_version', ?)",
                (str(catalog.version),),
            )
        self.catalog = catalog

    def _check_writable(self) -> None:
        if not self.writable:
            raise StoreError("this transaction is read-only")

    def _require_table(self, table: str) -> TableInfo:
        info = self.catalog.table(table)
        if info is None:
            raise StoreError(f"table {table!r} does not exist")
        return info

    def _write_doc(self, info: TableInfo, doc: Document, *, existed: bool) -> None:
        body = dumps(doc)
        if existed:
            self.conn.execute(
                "UPDATE documents SET body = ?, ts = ? WHERE id = ?", (body, self.ts, doc["_id"])
            )
        else:
            self.conn.execute(
                "INSERT INTO documents (id, tbl, ts, body) VALUES (?, ?, ?, ?)",
                (doc["_id"], info.number, self.ts, body),
            )

    def _search_write(self, info: TableInfo, old: Document | None, new: Document | None) -> None:
        """Keep every search index of ``info`` in step with one document write."""
        conn = self.conn  # held rows written first (PendingWrites' first rule)
        self.changed_keys += fts.follow(conn, info.search.values(), old, new)

    def _insert_key(self, ix: IndexInfo, key: bytes, doc_id: str) -> None:
        if not ix.virtual:
            self.conn.execute(
                "INSERT INTO indexes (index_id, key, doc_id) VALUES (?, ?, ?)",
                (ix.index_id, key, doc_id),
            )
        self.changed_keys.append((ix.index_id, key))

    def _delete_key(self, ix: IndexInfo, key: bytes) -> None:
        if not ix.virtual:
            self.conn.execute(
                "DELETE FROM indexes WHERE index_id = ? AND key = ?", (ix.index_id, key)
            )
        self.changed_keys.append((ix.index_id, key))

    def _record(self, table: str, doc_id: str, old: Document | None, new: Document | None) -> None:
        if self.quota is not None and self.catalog.replication.get(table) == "up":
            # Refused here, inside the mutation, not in ``finish``: an MQTT message's
            # mutation then fails alone and is dead-lettered with the reason.
            self.quota.check_room(table, self.origin)
        change = self._changes.get(doc_id)
        if change is None:
            self._changes[doc_id] = DocChange(table, doc_id, old, new)
        else:
            change.new = new


# ``by_id``'s key is the id's, which ends every tail key (``_creationTime`` is a number,
# whose key is always a tag and 8 bytes), so it is cut from the tail.
Prefix = tuple[tuple[str, ...], ...] | None
_BY_ID: Final[Prefix] = (("_id",),)
_FLOAT_KEY_BYTES: Final = 9


class _InsertPlan:
    """How ``insert`` computes and stores a table's index keys (built once per table)."""

    def __init__(self, info: TableInfo) -> None:
        # (index id, its key paths before the (_creationTime, _id) tail or None (no such
        # tail) or _BY_ID, whether it has rows (not virtual), the index)
        self.keyed: list[tuple[int, Prefix, bool, IndexInfo]] = []
        for ix in info.indexes.values():
            tail = ix.fields[-len(SYSTEM_FIELDS_KEY) :] == SYSTEM_FIELDS_KEY
            prefix: Prefix = ix.paths[: -len(SYSTEM_FIELDS_KEY)] if tail else None
            if ix.fields == ("_id",):
                prefix = _BY_ID
            self.keyed.append((ix.index_id, prefix, not ix.virtual, ix))
        stored = sum(1 for ix in info.indexes.values() if not ix.virtual)
        self.sql = "INSERT INTO indexes (index_id, key, doc_id) VALUES " + ", ".join(
            ["(?, ?, ?)"] * stored
        )


def _key(ix: IndexInfo, prefix: Prefix, doc: Document, tail: bytes) -> bytes:
    """A new document's key in ``ix`` (``tail``: its ``creation_id_key``)."""
    if prefix is _BY_ID:
        return tail[_FLOAT_KEY_BYTES:]
    if prefix is None:
        return index_key(ix, doc)
    if not prefix:  # by_creation_time
        return tail
    return encode_index_key([value_at(doc, path) for path in prefix]) + tail


def _insert_plan(info: TableInfo) -> _InsertPlan:
    # A TableInfo is never changed once built (a new index makes a new one).
    plan: _InsertPlan | None = info.__dict__.get("_insert_plan")
    if plan is None:
        plan = info.__dict__["_insert_plan"] = _InsertPlan(info)
    return plan


def _load(body: str) -> Document:
    doc = loads(body)
    assert isinstance(doc, dict)
    return doc


def _same(a: Document | None, b: Document | None) -> bool:
    if a is None or b is None:
        return a is b
    return dumps(a) == dumps(b)


def _op(change: DocChange) -> str:
    if change.old is None:
        return "insert"
    return "delete" if change.new is None else "update"
