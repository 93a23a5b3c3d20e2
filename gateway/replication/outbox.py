"""The outbox as the uplink sees it: batches cut from ``change_log``, the durable cursor.

The store writes ``change_log`` rows in the same transaction as the data (for tables
declared ``.replicate("up")``; ``gateway/store/transaction.py``). Here they are read on
the store's readers (never the writer: a backlog being drained must not delay local
writes), one batch at a time, and cut to ``batch.py``'s caps. A row's document is
already Convex's JSON wire form (``gateway.values.dumps``), so each change is written
as JSON text around it, never parsed and encoded again: the batch's body is spliced
from those texts (``client.py``), which keeps the edge's share of the drain small and
its event loop and readers free for local work. The cursor (``meta``
``outbox_acked``: the highest seq the upstream has durably applied) moves only in a
writer job run after the upstream's answer, and that same job prunes what it covers (a
segment at a time: ``gateway/store/outbox_log.py``). A crash between the answer and the
job only means the batch is sent again, which the upstream acknowledges without
applying it twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway.replication.batch import MAX_BATCH_BYTES, MAX_BATCH_CHANGES
from gateway.store import Store, Transaction, outbox_log
from gateway.store.outbox_log import CURSOR_KEY

__all__ = ["CUT_CHANGES", "CURSOR_KEY", "Cut", "Outbox", "newest_seq"]
# Changes this edge puts in a batch: half the contract's cap (``MAX_BATCH_CHANGES``, what
# an upstream must accept). The uplink's work per batch (the cut's read, compressing
# the body, the acknowledgement) comes in stretches that local writes wait behind on a
# one-core share; halving them halved the wait, and the hub's drain rate did not drop
# (bench/replication.py, 1,000,000 documents: ingest p99 while draining 9.1 -> 5.5 ms
# against 3.3 and 2.6 idle; 38,900 -> 41,500 docs/s with four batches in flight).
CUT_CHANGES = MAX_BATCH_CHANGES // 2
# Rows fetched per read: a batch is cut from at most this many, so one read stays short.
_READ_ROWS = MAX_BATCH_CHANGES
# JSON punctuation around each change in the batch's "changes" array.
_CHANGE_OVERHEAD_BYTES = 2
# ``_change``'s text, built by SQLite (in C, the GIL released) for the fast path. Table
# names are identifiers and ids base32, so ``json_quote`` writes them as ``json.dumps``
# does; a seq below 2**53 prints as ``float(seq)!r`` does (a test holds them equal).
_CHANGE_SQL = (
    'seq, trusted, tbl, \'{"seq":\' || seq || \'.0,"op":"\' || op || \'","table":\' '
    '|| json_quote(tbl) || \',"id":\' || json_quote(doc_id) || \',"ts":"\' || ts '
    "|| '\",\"doc\":' || coalesce(after, 'null') || '}'"
)


@dataclass(frozen=True)
class Cut:
    """One batch's changes, ``first`` .. ``last`` with no gap, each as its JSON text,
    their encoded size, and whether the wall clock was trustworthy when every one of
    them was stamped (a batch is cut where that changes, so the flag is true of each
    change in it)."""

    first: int
    last: int
    encoded: list[str]
    size_bytes: int
    clock_trusted: bool = True
    newest: int = 0  # the highest seq written when the cut was read

    @property
    def changes(self) -> list[dict[str, Any]]:
        """The changes as values (decoded: for tests and tools, not the drain)."""
        parsed: list[dict[str, Any]] = json.loads("[" + ",".join(self.encoded) + "]")
        return parsed


class Outbox:
    """Reads batches after a seq, advances the cursor, prunes what is acknowledged."""

    def __init__(
        self,
        store: Store,
        *,
        max_changes: int = CUT_CHANGES,
        max_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self._store = store
        self._max_changes = max_changes
        self._max_bytes = max_bytes

    async def cursor(self) -> int:
        """The highest seq the upstream has acknowledged (0 before the first)."""
        value, _ = await self._store.read(_read_cursor)
        return value

    async def next_cut(self, after: int) -> Cut | None:
        """The entries after ``after`` that fit one batch; None when there are none."""
        cut, _ = await self._store.read(lambda tx: self._cut_after(tx, after))
        return cut

    async def acknowledge(self, applied: int) -> None:
        """Move the cursor to ``applied`` and prune the entries up to it. Not fsynced of
        its own (``durable=False``): lost at a power cut, it only means the batches since
        the last durable write are sent again, and acknowledged without being applied."""
        await self._store.write(lambda tx: _advance(tx, applied), durable=False)

    async def newest(self) -> int:
        """The highest seq in the outbox now (0 when every entry is pruned)."""
        value, _ = await self._store.read(newest_seq)
        return value

    def _cut_after(self, tx: Transaction, after: int) -> Cut | None:
        """On a reader thread: the rows read and decoded there, off the event loop."""
        return cut_after(tx.conn, after, tx.catalog.replication, self._max_changes, self._max_bytes)


def cut_after(
    conn: sqlite3.Connection,
    after: int,
    replicated: Mapping[str, str],
    max_changes: int = CUT_CHANGES,
    max_bytes: int = MAX_BATCH_BYTES,
) -> Cut | None:
    """The entries after ``after`` that fit one batch, read on ``conn`` (in one read
    transaction: the caller's); None when there are none. ``replicated``: each table's
    direction (``Catalog.replication``)."""
    limit = min(max_changes, _READ_ROWS)
    texts = outbox_log.rows_after(conn, after, limit, _CHANGE_SQL)
    if not texts:
        return None
    cut = _whole_cut(after, texts, replicated, max_changes, max_bytes)
    if cut is None:  # a hole, a change of clock trust, a skip, or past the caps
        rows = outbox_log.rows_after(conn, after, min(max_changes, _READ_ROWS))
        cut = _cut(after, rows, replicated, max_changes, max_bytes)
    return replace(cut, newest=outbox_log.newest_seq(conn))


def _whole_cut(
    after: int,
    texts: list[tuple[Any, ...]],
    replicated: Mapping[str, str],
    max_changes: int,
    max_bytes: int,
) -> Cut | None:
    """The fast path: every entry read goes in the batch as SQLite wrote it, when
    ``_cut`` would take them all as they are (``None`` otherwise). Each check is one
    pass in C; the common batch (contiguous, one clock trust, ``up`` tables only,
    within the caps) never loops in Python."""
    first, last = texts[0][0], texts[-1][0]
    if (after and first != after + 1) or last - first + 1 != len(texts):
        return None
    trusted = {row[1] for row in texts}
    if len(trusted) != 1 or any(replicated.get(t) != "up" for t in {row[2] for row in texts}):
        return None
    encoded = [row[3] for row in texts]
    size = sum(map(len, encoded)) + _CHANGE_OVERHEAD_BYTES * len(encoded)
    if size > max_bytes or len(encoded) > max_changes:
        return None
    return Cut(first, last, encoded, size, bool(trusted.pop()))


def _cut(
    after: int,
    rows: list[tuple[Any, ...]],
    replicated: Mapping[str, str],
    max_changes: int,
    max_bytes: int,
) -> Cut:
    encoded: list[str] = []
    size = 0
    expected = after + 1 if after else rows[0][0]
    first = expected if expected < rows[0][0] else rows[0][0]
    trusted = bool(rows[0][6])
    for seq, ts, op, table, doc_id, body, row_trusted in rows:
        if bool(row_trusted) != trusted:
            break
        # A hole: entries dropped by the quota (``drop_oldest``) go as skips, so the
        # upstream's mark passes them; capped, a long hole takes several batches.
        for missing in range(expected, min(seq, expected + max_changes)):
            encoded.append(_skip(missing, "", ""))
        if len(encoded) >= max_changes:
            break
        change = (
            _change(seq, ts, op, table, doc_id, body)
            if replicated.get(table) == "up"
            else _skip(seq, table, doc_id)
        )
        change_bytes = len(change) + _CHANGE_OVERHEAD_BYTES
        if encoded and (size + change_bytes > max_bytes or len(encoded) >= max_changes):
            break
        encoded.append(change)
        size += change_bytes
        expected = seq + 1
    encoded = encoded[:max_changes]  # seqs first, first + 1, ... by construction
    return Cut(first, first + len(encoded) - 1, encoded, size, trusted)


def _change(seq: int, ts: int, op: str, table: str, doc_id: str, body: str | None) -> str:
    # ``body`` is already Convex's JSON wire form (``gateway.values.dumps``): spliced in.
    # Table names and ids are plain ASCII identifiers, but are quoted by the encoder all
    # the same: a row is data, and the upstream parses what this writes.
    return (
        f'{{"seq":{float(seq)!r},"op":"{op}","table":{json.dumps(table)},'
        f'"id":{json.dumps(doc_id)},"ts":"{int(ts)}","doc":{"null" if body is None else body}}}'
    )


def _skip(seq: int, table: str, doc_id: str) -> str:
    return _change(seq, 0, "skip", table, doc_id, None)


def _read_cursor(tx: Transaction) -> int:
    return outbox_log.read_cursor(tx.conn)


def _advance(tx: Transaction, applied: int) -> None:
    freed = outbox_log.acknowledge(tx.conn, applied)
    if freed is not None and tx.quota is not None:  # the running byte count
        tx.quota.freed(freed)


def newest_seq(tx: Transaction) -> int:
    """The highest seq in the outbox (0 when every entry is pruned)."""
    return outbox_log.newest_seq(tx.conn)
