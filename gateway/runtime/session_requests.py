"""Mutation dedupe across reconnects: the ``_session_requests`` system table.

The npm client resends every mutation still in flight after a reconnect (same
``sessionId`` and ``requestId``, wire spec 2.7/2.8), including ones already answered.
A successful sync mutation records its result and commit ts under that pair in the
SAME writer transaction as its writes, so either both are durable or neither is; a
repeat finds the record and gets the original answer without running again
(convex-semantics 5). Failed mutations write nothing, so rerunning them is harmless
and they are not recorded. Records older than ``RETENTION_MS`` are pruned a few at a
time by later recording transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from gateway.runtime.index_range import IndexRangeBuilder, resolve_range
from gateway.store import BY_CREATION_TIME, Transaction
from gateway.values import dumps, encode_index_key, loads

SESSION_REQUESTS_TABLE: Final = "_session_requests"
BY_SESSION_REQUEST: Final = "by_session_request"
SESSION_REQUEST_FIELDS: Final = ("sessionId", "requestId")
RETENTION_MS: Final = 14 * 86_400_000.0
PRUNE_BATCH: Final = 16


@dataclass(frozen=True)
class Replayed:
    """A mutation already applied for this (sessionId, requestId): its stored answer."""

    value: Any
    ts: int


def ensure_session_requests_table(tx: Transaction) -> None:
    """Create the table and its (sessionId, requestId) index if this store has none yet."""
    if tx.catalog.table(SESSION_REQUESTS_TABLE) is None:
        tx.create_table(SESSION_REQUESTS_TABLE)
        tx.create_index(SESSION_REQUESTS_TABLE, BY_SESSION_REQUEST, SESSION_REQUEST_FIELDS)


def find(tx: Transaction, session_id: str, request_id: int) -> Replayed | None:
    """The recorded outcome of (session_id, request_id), if that mutation committed."""
    info = tx.catalog.table(SESSION_REQUESTS_TABLE)
    if info is None:
        return None
    index = info.indexes[BY_SESSION_REQUEST]
    builder = IndexRangeBuilder().eq("sessionId", session_id).eq("requestId", float(request_id))
    rng = resolve_range(
        builder,
        table=SESSION_REQUESTS_TABLE,
        index_name=BY_SESSION_REQUEST,
        index_fields=index.fields,
    )
    for _key, _size, doc in tx.scan(index, rng.start, rng.end):
        return Replayed(loads(doc["result"]), int(doc["ts"]))
    return None


def record(tx: Transaction, session_id: str, request_id: int, value: Any, now_ms: float) -> None:
    """Store a successful mutation's result and commit ts (``tx.ts``) in its transaction."""
    _prune(tx, now_ms)
    doc = {
        "sessionId": session_id,
        "requestId": float(request_id),
        "result": dumps(value),  # JSON text: any Convex value, whatever its field names
        "ts": str(tx.ts),  # a decimal string: the ts is a 64-bit integer
    }
    tx.insert(SESSION_REQUESTS_TABLE, doc, now_ms)


def _prune(tx: Transaction, now_ms: float) -> None:
    info = tx.catalog.table(SESSION_REQUESTS_TABLE)
    if info is None:
        return
    cutoff = encode_index_key([now_ms - RETENTION_MS])
    old = []
    for _key, _size, doc in tx.scan(info.indexes[BY_CREATION_TIME], b"", cutoff):
        old.append(doc)
        if len(old) >= PRUNE_BATCH:
            break
    for doc in old:
        tx.delete(SESSION_REQUESTS_TABLE, doc)
