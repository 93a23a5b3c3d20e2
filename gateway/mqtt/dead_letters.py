"""The ``_dead_letters`` system table: MQTT messages that could not be applied.

A message that cannot be applied (no route, undecodable, too big, refused by the
mutation's validators, or the mutation threw) is stored here with the reason, in the
same writer job that moves its device's dedupe mark, and is then acknowledged: it never
blocks the stream and is never silently dropped. Read it with
``outpost data _dead_letters`` or the HTTP API (admin).

The table is bounded: past ``MAX_ROWS`` the oldest rows are deleted a few per insert,
and the gateway logs that it did.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from gateway.store import BY_CREATION_TIME, Transaction

log = logging.getLogger("gateway.mqtt")

DEAD_LETTERS_TABLE: Final = "_dead_letters"
MAX_ROWS: Final = 10_000
PRUNE_BATCH: Final = 4  # per insert past MAX_ROWS: the table shrinks back under a flood
KEPT_PAYLOAD_BYTES: Final = 64 * 1024  # of an oversized payload, what the row keeps


def ensure_table(tx: Transaction) -> None:
    if tx.catalog.table(DEAD_LETTERS_TABLE) is None:
        tx.create_table(DEAD_LETTERS_TABLE)


def count(tx: Transaction) -> int:
    """Rows in the table now (once, at the bridge's start: a full index scan)."""
    info = tx.catalog.table(DEAD_LETTERS_TABLE)
    if info is None:
        return 0
    return sum(1 for _ in tx.scan(info.indexes[BY_CREATION_TIME], b"", None))


def insert(
    tx: Transaction,
    *,
    topic: str,
    device: str | None,
    payload: bytes,
    reason: str,
    qos: int,
    now_ms: float,
    seq: int | None = None,
    boot: int | None = None,
    over_limit: bool = False,
) -> None:
    """Store one dead letter; ``over_limit``: the table is full, drop its oldest rows."""
    doc: dict[str, Any] = {
        "topic": topic,
        "device": device,
        "payload": payload[:KEPT_PAYLOAD_BYTES],
        "size": float(len(payload)),
        "reason": reason,
        "qos": float(qos),
        "time": now_ms,
    }
    if seq is not None:
        doc["seq"] = float(seq)
        doc["boot"] = float(boot or 0)
    if over_limit:
        _drop_oldest(tx)
    tx.insert(DEAD_LETTERS_TABLE, doc, now_ms)


def _drop_oldest(tx: Transaction) -> None:
    info = tx.catalog.table(DEAD_LETTERS_TABLE)
    if info is None:
        return
    oldest = []
    for _key, _size, doc in tx.scan(info.indexes[BY_CREATION_TIME], b"", None):
        oldest.append(doc)
        if len(oldest) >= PRUNE_BATCH:
            break
    for doc in oldest:
        tx.delete(DEAD_LETTERS_TABLE, doc)
