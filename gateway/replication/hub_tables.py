"""The hub's own records: high-water marks, provenance, and dead letters.

All three are written only inside a push's transaction, so a mark, the documents it
covers, their provenance and any dead letter commit together or not at all.

- ``_replication_marks`` (a system table: ``outpost data _replication_marks``,
  ``ctx.db.system``): one row per (gateway, epoch): ``applied`` (the highest seq
  applied), ``lastSeenMs``, ``clockTrusted`` and ``schema`` of the latest batch.
- Provenance (the SQLite table ``replication_provenance``, read with the admin query
  ``_system/replication:provenance``): one row per replicated document: its table, and
  the ``gateway``, ``epoch``, ``seq``, ``ts`` (the edge's commit ts), ``clockTrusted``
  and ``receivedMs`` of the change that created it on the hub. A separate table, not a
  field in the document, so the app's documents stay exactly the edge's (same body,
  same ``_id``) and its schema needs no extra field. A plain SQLite table rather than
  a system table of documents: it is written once per replicated document, and as a
  document (an id, a JSON body, two index rows, a lookup before each insert) it took a
  fifth of the hub's time; as a row it is one ``executemany`` per batch.
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
# Before provenance moved to a plain table it was this system table (migrated at start).
_OLD_PROVENANCE_TABLE: Final = "_replication_provenance"
_MOVE_CHUNK: Final = 1000
_PROVENANCE_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS replication_provenance (doc_id TEXT PRIMARY KEY, "
    "tbl TEXT NOT NULL, gateway TEXT NOT NULL, epoch REAL NOT NULL, seq REAL NOT NULL, "
    "ts TEXT NOT NULL, trusted INTEGER NOT NULL, received_ms REAL NOT NULL) WITHOUT ROWID"
)
_PROVENANCE_COLUMNS: Final = "tbl, gateway, epoch, seq, ts, trusted, received_ms"

BY_GATEWAY_EPOCH: Final = "by_gateway_epoch"


def ensure_hub_tables(tx: Transaction) -> None:
    """Create the tables and their lookup indexes where missing (at hub start)."""
    if tx.catalog.table(MARKS_TABLE) is None:
        tx.create_table(MARKS_TABLE)
        tx.create_index(MARKS_TABLE, BY_GATEWAY_EPOCH, ("gateway", "epoch"))
    if tx.catalog.table(DEAD_LETTERS_TABLE) is None:
        tx.create_table(DEAD_LETTERS_TABLE)
    tx.conn.execute(_PROVENANCE_DDL)


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
        row = (
            *(doc["docId"], doc["table"], doc["gateway"], doc["epoch"], doc["seq"], doc["ts"]),
            *(int(bool(doc["clockTrusted"])), doc["receivedMs"]),
        )
        tx.conn.execute(f"INSERT OR IGNORE INTO replication_provenance VALUES ({_QMARKS})", row)
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


_QMARKS: Final = ", ".join("?" * 8)


def _seq(change: dict[str, Any]) -> float | None:
    seq = change.get("seq")
    return float(seq) if type(seq) is float or type(seq) is int else None


class ProvenanceWrites:
    """One batch's provenance changes, written with two statements at its end.

    ``created``: the documents the batch created (a document deleted and created again
    in one batch is named by its last creation); ``deleted``: those it deleted that
    existed before it. The two are disjoint, so their order of writing does not matter."""

    def __init__(self, origin: dict[str, Any]) -> None:
        self.created: dict[str, tuple[Any, ...]] = {}
        self.deleted: set[str] = set()
        # the columns after (doc id, table, ...) and (..., seq, ts) every row shares
        self._gateway = (origin["gateway"], origin["epoch"])
        self._received = (int(bool(origin["clockTrusted"])), origin["receivedMs"])

    def create(self, table: str, doc_id: str, change: dict[str, Any]) -> None:
        """``change`` (JSON, as the edge sent it) created ``doc_id`` in ``table``."""
        if self.deleted:
            self.deleted.discard(doc_id)
        seq_ts = (_seq(change), str(change.get("ts")))
        self.created[doc_id] = (doc_id, table, *self._gateway, *seq_ts, *self._received)

    def delete(self, doc_id: str) -> None:
        if self.created.pop(doc_id, None) is None:
            self.deleted.add(doc_id)

    def write(self, tx: Transaction) -> None:
        if self.deleted:
            tx.conn.executemany(
                "DELETE FROM replication_provenance WHERE doc_id = ?",
                [(doc_id,) for doc_id in self.deleted],
            )
        if self.created:
            tx.conn.executemany(
                f"INSERT OR REPLACE INTO replication_provenance VALUES ({_QMARKS})",
                self.created.values(),
            )


def provenance(tx: Transaction, doc_id: str) -> dict[str, Any] | None:
    """Where the document ``doc_id`` came from, or None (not replicated to this hub)."""
    row = tx.conn.execute(
        f"SELECT {_PROVENANCE_COLUMNS} FROM replication_provenance WHERE doc_id = ?",
        (doc_id,),
    ).fetchone()
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
