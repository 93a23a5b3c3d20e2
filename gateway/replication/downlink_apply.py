"""One page of upstream changes applied to a ``down`` table, with its cursor, in one job.

``apply_page`` runs on the store's writer (``Store.write``), so the documents and the
durable cursor (the ``meta`` row ``downlink_cursor:<table>``) commit together: after a
crash the edge resumes from a cursor that matches its data exactly. It writes through
the store, below the runtime's "down tables refuse local writes" rule, which guards app
mutations only. ``down`` tables are not ``up``, so these writes leave no outbox entry.

Idempotent: changes at or below the stored cursor are skipped (a page re-delivered
after a reconnect counts once), an insert of a document already here replaces it, a
tombstone of a missing document is a no-op.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Final

from gateway.replication.downlink_contract import CURSOR_META_PREFIX
from gateway.store import Transaction
from gateway.values import decode_id, decode_json, encode_id

_SYSTEM_FIELDS: Final = ("_id", "_creationTime")


class BadChange(ValueError):
    """A change the edge cannot apply (its text says why); the page is refused."""


@dataclass
class Applied:
    """What one page did: how many changes it applied and the cursor now stored."""

    table: str
    applied: int
    cursor: float


def read_cursors(conn: sqlite3.Connection, tables: list[str]) -> dict[str, float]:
    """Each table's durable cursor (0.0 before its first page)."""
    rows = conn.execute(
        "SELECT key, value FROM meta WHERE key LIKE ?", (CURSOR_META_PREFIX + "%",)
    ).fetchall()
    stored = {key[len(CURSOR_META_PREFIX) :]: float(value) for key, value in rows}
    return {table: stored.get(table, 0.0) for table in tables}


def apply_page(tx: Transaction, table: str, page: dict[str, Any]) -> Applied:
    """Apply ``page`` (a changes answer, Convex JSON) to ``table``; store its cursor."""
    done = read_cursors(tx.conn, [table])[table]
    applied = 0
    for change in page.get("changes", []):
        cursor = _number(change.get("cursor"), "cursor")
        if cursor <= done:
            continue
        _apply(tx, table, change)
        applied += 1
    cursor = max(done, _number(page.get("cursor"), "cursor"))
    tx.conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        (CURSOR_META_PREFIX + table, repr(cursor)),
    )
    return Applied(table, applied, cursor)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadChange(f"the upstream's {what} is not a number: {value!r}")
    return float(value)


def local_id(tx: Transaction, table: str, upstream_id: object) -> str:
    """The edge's id of an upstream document: the same id when the table numbers agree
    (an Outpost hub with the same schema), else its 16 bytes under this table's number
    (a Convex deployment numbers its tables its own way)."""
    info = tx.catalog.table(table) or tx.create_table(table)
    if not isinstance(upstream_id, str):
        raise BadChange(f"the upstream's change has no document id: {upstream_id!r}")
    try:
        number, internal = decode_id(upstream_id)
    except (ValueError, TypeError) as exc:
        raise BadChange(f"{upstream_id!r} is not a document id ({exc})") from None
    return upstream_id if number == info.number else encode_id(info.number, internal)


def _apply(tx: Transaction, table: str, change: dict[str, Any]) -> None:
    doc_id = local_id(tx, table, change.get("id"))
    old = tx.get(doc_id)
    doc = change.get("doc")
    if change.get("deleted") or doc is None:
        if old is not None:
            tx.delete(table, old)
        return
    if not isinstance(doc, dict):
        raise BadChange(f"the document of {doc_id} is not an object")
    value = decode_json(doc)
    assert isinstance(value, dict)
    body = {k: x for k, x in value.items() if k not in _SYSTEM_FIELDS}
    if old is not None:
        tx.replace(table, old, body)
        return
    creation = value.get("_creationTime")
    if isinstance(creation, bool) or not isinstance(creation, int | float):
        raise BadChange(f"the document of {doc_id} has no _creationTime")
    tx.insert_existing(table, {"_id": doc_id, "_creationTime": float(creation), **body})
