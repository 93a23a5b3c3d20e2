"""The hub's own records: high-water marks, provenance, and dead letters.

All three are written only inside a push's transaction, so a mark, the documents it
covers, their provenance and any dead letter commit together or not at all.

- ``_replication_marks`` (a system table: ``outpost data _replication_marks``,
  ``ctx.db.system``): one row per (gateway, epoch): ``applied`` (the highest seq
  applied), ``lastSeenMs``, ``clockTrusted`` and ``schema`` of the latest batch.
- Provenance (two plain SQLite tables, read with the admin query
  ``_system/replication:provenance``): per replicated document its table, the ``seq``
  and ``ts`` (the edge's commit ts) of the change that created it on the hub, and the
  push that brought it (``replication_pushes``: ``gateway``, ``epoch``,
  ``clockTrusted``, ``receivedMs``, one row per push that created documents). Kept
  beside the documents, not as a field in them, so the app's documents stay exactly the
  edge's (same body, same ``_id``) and its schema needs no extra field. Plain tables
  rather than a system table of documents: written once per replicated document, as a
  document (an id, a JSON body, two index rows, a lookup before each insert) it took a
  fifth of the hub's time; as a row it is one ``executemany`` per batch. The push's
  fields live once in their own row rather than in every document's, which made the
  per-document row a third of the size it was (bench/replication.py: +6% drain).
- ``_replication_dead_letters`` (a system table): a change the hub could not apply (its
  schema refused the document, its table number clashes, ...), with the reason; the
  rest of the batch is applied and the mark moves past it, so one bad document never
  stalls a gateway. The newest ``MAX_DEAD_LETTERS`` are kept.
"""

from __future__ import annotations

import json
from typing import Any, Final

from gateway.store import BY_CREATION_TIME, Transaction
from gateway.store.catalog import TableInfo
from gateway.values import encode_index_key, key_successor

MARKS_TABLE: Final = "_replication_marks"
DEAD_LETTERS_TABLE: Final = "_replication_dead_letters"
HUB_TABLES: Final = (MARKS_TABLE, DEAD_LETTERS_TABLE)
MAX_DEAD_LETTERS: Final = 10_000
# Before provenance moved to plain tables it was this system table (migrated at start).
_OLD_PROVENANCE_TABLE: Final = "_replication_provenance"
_MOVE_CHUNK: Final = 1000
_PROVENANCE_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS replication_pushes (id INTEGER PRIMARY KEY, "
    "gateway TEXT NOT NULL, epoch REAL NOT NULL, trusted INTEGER NOT NULL, "
    "received_ms REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS replication_origins (doc_id TEXT PRIMARY KEY, "
    "tbl TEXT NOT NULL, push INTEGER NOT NULL, seq REAL NOT NULL, ts TEXT NOT NULL) "
    "WITHOUT ROWID",
)
# ... and before that, one table with every field in every document's row.
_FLAT_PROVENANCE_TABLE: Final = "replication_provenance"
_FLAT_PUSH: Final = "gateway, epoch, trusted, received_ms"
_MOVE_FLAT: Final = (
    f"INSERT INTO replication_pushes ({_FLAT_PUSH}) "
    f"SELECT DISTINCT {_FLAT_PUSH} FROM {_FLAT_PROVENANCE_TABLE}",
    "INSERT OR IGNORE INTO replication_origins SELECT f.doc_id, f.tbl, p.id, f.seq, f.ts "
    f"FROM {_FLAT_PROVENANCE_TABLE} f JOIN replication_pushes p USING ({_FLAT_PUSH})",
    f"DROP TABLE {_FLAT_PROVENANCE_TABLE}",
)

BY_GATEWAY_EPOCH: Final = "by_gateway_epoch"


def ensure_hub_tables(tx: Transaction) -> None:
    """Create the tables and their lookup indexes where missing (at hub start)."""
    if tx.catalog.table(MARKS_TABLE) is None:
        tx.create_table(MARKS_TABLE)
        tx.create_index(MARKS_TABLE, BY_GATEWAY_EPOCH, ("gateway", "epoch"))
    if tx.catalog.table(DEAD_LETTERS_TABLE) is None:
        tx.create_table(DEAD_LETTERS_TABLE)
    for ddl in _PROVENANCE_DDL:
        tx.conn.execute(ddl)
    flat = tx.conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (_FLAT_PROVENANCE_TABLE,)
    ).fetchone()
    if flat is not None:  # one statement each: a few seconds at start for millions of rows
        for sql in _MOVE_FLAT:
            tx.conn.execute(sql)


def move_old_provenance(tx: Transaction) -> bool:
    """Move up to ``_MOVE_CHUNK`` rows of the old ``_replication_provenance`` system
    table (before provenance became a plain table); False once none are left. Run as
    many writer jobs as it takes: a hub with millions of them never holds them all in
    one transaction or in memory."""
    info = tx.catalog.table(_OLD_PROVENANCE_TABLE)
    if info is None:
        return False
    chunk = []
    for _key, _size, doc in tx.scan(info.indexes[BY_CREATION_TIME], b"", None):
        chunk.append(doc)
        if len(chunk) >= _MOVE_CHUNK:
            break
    for doc in chunk:
        push = (doc["gateway"], doc["epoch"], int(bool(doc["clockTrusted"])), doc["receivedMs"])
        origin = (doc["docId"], doc["table"], _push_row(tx, push), doc["seq"], doc["ts"])
        tx.conn.execute("INSERT OR IGNORE INTO replication_origins VALUES (?, ?, ?, ?, ?)", origin)
        tx.delete(_OLD_PROVENANCE_TABLE, doc)
    return bool(chunk)


def _first(tx: Transaction, table: str, index: str, values: list[Any]) -> dict[str, Any] | None:
    info = _table(tx, table)
    prefix = encode_index_key(values)
    for _key, _size, doc in tx.scan(info.indexes[index], prefix, key_successor(prefix)):
        return doc
    return None


def _table(tx: Transaction, table: str) -> TableInfo:
    info = tx.catalog.table(table)
    if info is None:  # ensure_hub_tables runs before the push is installed
        raise RuntimeError(f"the hub's system table {table} is missing")
    return info


def find_mark(tx: Transaction, gateway: str, epoch: float) -> dict[str, Any] | None:
    """The mark row of (gateway, epoch), or None before its first batch."""
    return _first(tx, MARKS_TABLE, BY_GATEWAY_EPOCH, [gateway, epoch])


def save_mark(
    tx: Transaction,
    old: dict[str, Any] | None,
    fields: dict[str, Any],
    now_ms: float,
) -> None:
    """Insert or move the mark of ``fields["gateway"], fields["epoch"]``."""
    if old is None:
        tx.insert(MARKS_TABLE, fields, now_ms)
    else:
        tx.replace(MARKS_TABLE, old, fields)


def _push_row(tx: Transaction, push: tuple[Any, ...]) -> int:
    """A new ``replication_pushes`` row of (gateway, epoch, trusted, received_ms); its id."""
    cursor = tx.conn.execute(
        f"INSERT INTO replication_pushes ({_FLAT_PUSH}) VALUES (?, ?, ?, ?)", push
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def origin_row(table: str, doc_id: str, change: dict[str, Any]) -> tuple[Any, ...]:
    """``ProvenanceWrites.created``'s entry for ``change`` creating ``doc_id``."""
    return (doc_id, table, _seq(change), str(change.get("ts")))


def _seq(change: dict[str, Any]) -> float | None:
    seq = change.get("seq")
    return float(seq) if type(seq) is float or type(seq) is int else None


class ProvenanceWrites:
    """One batch's provenance changes, written with three statements at its end.

    ``created``: the documents the batch created (a document deleted and created again
    in one batch is named by its last creation); ``deleted``: those it deleted that
    existed before it. The two are disjoint, so their order of writing does not matter."""

    def __init__(self, origin: dict[str, Any]) -> None:
        self.created: dict[str, tuple[Any, ...]] = {}
        self.deleted: set[str] = set()
        self._push = (
            *(origin["gateway"], origin["epoch"]),
            *(int(bool(origin["clockTrusted"])), origin["receivedMs"]),
        )

    def create(self, table: str, doc_id: str, change: dict[str, Any]) -> None:
        """``change`` (JSON, as the edge sent it) created ``doc_id`` in ``table``."""
        if self.deleted:
            self.deleted.discard(doc_id)
        self.created[doc_id] = origin_row(table, doc_id, change)

    def delete(self, doc_id: str) -> None:
        if self.created.pop(doc_id, None) is None:
            self.deleted.add(doc_id)

    def write(self, tx: Transaction) -> None:
        if self.deleted:
            tx.conn.executemany(
                "DELETE FROM replication_origins WHERE doc_id = ?",
                [(doc_id,) for doc_id in self.deleted],
            )
        if self.created:
            push = _push_row(tx, self._push)
            tx.conn.executemany(
                "INSERT OR REPLACE INTO replication_origins VALUES (?, ?, ?, ?, ?)",
                [
                    (doc_id, table, push, seq, ts)
                    for doc_id, table, seq, ts in self.created.values()
                ],
            )


def provenance(tx: Transaction, doc_id: str) -> dict[str, Any] | None:
    """Where the document ``doc_id`` came from, or None (not replicated to this hub)."""
    row = tx.conn.execute(PROVENANCE_SQL, (doc_id,)).fetchone()
    if row is None:
        return None
    table, gateway, epoch, seq, ts, trusted, received_ms = row
    return {
        "docId": doc_id,
        "table": table,
        "gateway": gateway,
        "epoch": epoch,
        "seq": seq,
        "ts": ts,
        "clockTrusted": bool(trusted),
        "receivedMs": received_ms,
    }


PROVENANCE_SQL: Final = (
    "SELECT o.tbl, p.gateway, p.epoch, o.seq, o.ts, p.trusted, p.received_ms "
    "FROM replication_origins o JOIN replication_pushes p ON p.id = o.push WHERE o.doc_id = ?"
)
"""A document's provenance row: (table, gateway, epoch, seq, ts, trusted, received_ms)."""


def dead_letter(
    tx: Transaction, change: dict[str, Any], origin: dict[str, Any], reason: str
) -> None:
    """Keep a change (Convex JSON, as the edge sent it) the hub could not apply, with why
    (its document as JSON text; fields of the wrong type as null)."""
    doc = change.get("doc")
    body = {
        **origin,
        "seq": _seq(change),
        "ts": str(change.get("ts")),
        "op": _text(change.get("op")),
        "table": _text(change.get("table")),
        "docId": _text(change.get("id")),
        "doc": None if doc is None else _json_text(doc),
        "reason": reason,
    }
    tx.insert(DEAD_LETTERS_TABLE, body, origin["receivedMs"])


def _json_text(doc: Any) -> str:
    """The document as the edge sent it; one too deep to write back out is named so (a
    dead letter must never fail its batch, or the gateway's stream would stall on it)."""
    try:
        return json.dumps(doc, ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        return '"(not kept: nested too deeply to write out)"'


def _text(value: Any) -> str | None:
    return value if type(value) is str else None


def cap_dead_letters(tx: Transaction) -> int:
    """Delete the oldest dead letters past ``MAX_DEAD_LETTERS``; how many went."""
    by_creation = _table(tx, DEAD_LETTERS_TABLE).indexes[BY_CREATION_TIME]
    (rows,) = tx.conn.execute(  # the index's rows: documents has no index by table
        "SELECT count(*) FROM indexes WHERE index_id = ?", (by_creation.index_id,)
    ).fetchone()
    excess = int(rows) - MAX_DEAD_LETTERS
    if excess <= 0:
        return 0
    oldest = []
    for _key, _size, doc in tx.scan(by_creation, b"", None):
        oldest.append(doc)
        if len(oldest) >= excess:
            break
    for doc in oldest:
        tx.delete(DEAD_LETTERS_TABLE, doc)
    return excess
