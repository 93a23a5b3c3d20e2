"""Retention: a table's old documents are removed on the box, never upstream.

Retention deletes run on the writer like any write, so live queries see them, but
they are not user deletes: they write no change-log row, so replication never sends
them. Each pass deletes at most ``batch_rows`` documents per table to keep the one
writer responsive; the next pass continues.
"""

from __future__ import annotations

from typing import Any

from gateway.store import BY_CREATION_TIME, Transaction
from gateway.values import encode_index_key

RETENTION_ORIGIN = "retention"


def apply_retention(tx: Transaction, schema: Any, now_ms: float, batch_rows: int = 1000) -> int:
    """Delete what each table's retention policy no longer keeps; returns how many."""
    if schema is None:
        return 0
    deleted = 0
    for name, definition in schema.tables.items():
        policy = definition.retention_policy
        if policy is None or tx.catalog.table(name) is None:
            continue
        deleted += _by_age(tx, name, policy.max_age_s, now_ms, batch_rows)
        deleted += _by_rows(tx, name, policy.max_rows, batch_rows)
        deleted += _by_bytes(tx, name, policy.max_bytes, batch_rows)
    return deleted


def _oldest(
    tx: Transaction, table: str, end: bytes | None, limit: int
) -> list[tuple[int, dict[str, Any]]]:
    info = tx.catalog.table(table)
    assert info is not None
    docs = []
    for _key, size, doc in tx.scan(info.indexes[BY_CREATION_TIME], b"", end):
        docs.append((size, doc))
        if len(docs) >= limit:
            break
    return docs


def _delete(tx: Transaction, table: str, docs: list[tuple[int, dict[str, Any]]]) -> int:
    for _size, doc in docs:
        tx.delete(table, doc)
    return len(docs)


def _by_age(tx: Transaction, table: str, max_age_s: float | None, now_ms: float, n: int) -> int:
    if not max_age_s:
        return 0
    cutoff = encode_index_key([now_ms - max_age_s * 1000])
    return _delete(tx, table, _oldest(tx, table, cutoff, n))


def _count(tx: Transaction, table: str) -> tuple[int, int]:
    info = tx.catalog.table(table)
    assert info is not None
    row = tx.conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM documents WHERE tbl = ?",
        (info.number,),
    ).fetchone()
    return int(row[0]), int(row[1])


def _by_rows(tx: Transaction, table: str, max_rows: int | None, n: int) -> int:
    if not max_rows:
        return 0
    rows, _ = _count(tx, table)
    excess = min(rows - max_rows, n)
    return _delete(tx, table, _oldest(tx, table, None, excess)) if excess > 0 else 0


def _by_bytes(tx: Transaction, table: str, max_bytes: int | None, n: int) -> int:
    if not max_bytes:
        return 0
    _, total = _count(tx, table)
    doomed = []
    for size, doc in _oldest(tx, table, None, n):
        if total <= max_bytes:
            break
        total -= size
        doomed.append((size, doc))
    return _delete(tx, table, doomed)
