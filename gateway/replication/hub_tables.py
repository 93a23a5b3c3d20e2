"""The hub's system tables: high-water marks, provenance, and dead letters.

All three are ordinary system tables (readable with ``outpost data _replication_marks``
and ``ctx.db.system``), written only inside a push's transaction, so a mark, the
documents it covers, their provenance and any dead letter commit together or not at all.

- ``_replication_marks``: one row per (gateway, epoch): ``applied`` (the highest seq
  applied), ``lastSeenMs``, ``clockTrusted`` and ``schema`` of the latest batch.
- ``_replication_provenance``: one row per replicated document: ``docId``, ``table``,
  and the ``gateway``, ``epoch``, ``seq``, ``ts`` (the edge's commit ts) and
  ``clockTrusted`` of the change that created it on the hub.
  A separate table, not a field in the document, so the app's documents stay exactly
  the edge's (same body, same ``_id``) and its schema needs no extra field.
- ``_replication_dead_letters``: a change the hub could not apply (its schema refused
  the document, its table number clashes, ...), with the reason; the rest of the batch
  is applied and the mark moves past it, so one bad document never stalls a gateway.
"""

from __future__ import annotations

from typing import Any, Final

from gateway.store import Transaction
from gateway.store.catalog import TableInfo
from gateway.values import dumps, encode_index_key, key_successor

MARKS_TABLE: Final = "_replication_marks"
PROVENANCE_TABLE: Final = "_replication_provenance"
DEAD_LETTERS_TABLE: Final = "_replication_dead_letters"
HUB_TABLES: Final = (MARKS_TABLE, PROVENANCE_TABLE, DEAD_LETTERS_TABLE)

BY_GATEWAY_EPOCH: Final = "by_gateway_epoch"
BY_DOC: Final = "by_doc"


def ensure_hub_tables(tx: Transaction) -> None:
    """Create the three tables and their lookup indexes where missing (at hub start)."""
    if tx.catalog.table(MARKS_TABLE) is None:
        tx.create_table(MARKS_TABLE)
        tx.create_index(MARKS_TABLE, BY_GATEWAY_EPOCH, ("gateway", "epoch"))
    if tx.catalog.table(PROVENANCE_TABLE) is None:
        tx.create_table(PROVENANCE_TABLE)
        tx.create_index(PROVENANCE_TABLE, BY_DOC, ("docId",))
    if tx.catalog.table(DEAD_LETTERS_TABLE) is None:
        tx.create_table(DEAD_LETTERS_TABLE)


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


def record_provenance(tx: Transaction, table: str, doc_id: str, origin: dict[str, Any]) -> None:
    """Name the gateway (epoch, seq) a document came from, once per document."""
    if _first(tx, PROVENANCE_TABLE, BY_DOC, [doc_id]) is None:
        body = {"docId": doc_id, "table": table, **origin}
        tx.insert(PROVENANCE_TABLE, body, origin["receivedMs"])


def forget_provenance(tx: Transaction, doc_id: str) -> None:
    """Drop a deleted document's provenance row."""
    row = _first(tx, PROVENANCE_TABLE, BY_DOC, [doc_id])
    if row is not None:
        tx.delete(PROVENANCE_TABLE, row)


def dead_letter(
    tx: Transaction, change: dict[str, Any], origin: dict[str, Any], reason: str
) -> None:
    """Keep a change the hub could not apply, with why (its document as JSON text)."""
    doc = change.get("doc")
    body = {
        **origin,
        "seq": change.get("seq"),
        "op": change.get("op"),
        "table": change.get("table"),
        "docId": change.get("id"),
        "doc": None if doc is None else dumps(doc),
        "reason": reason,
    }
    tx.insert(DEAD_LETTERS_TABLE, body, origin["receivedMs"])
