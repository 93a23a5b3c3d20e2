"""The hub's downlink change log, ``_replication_changes``, and the query that serves it.

Every write to a ``.replicate("down")`` table on a hub leaves one row per document in
``_replication_changes``: ``{table, docId, cursor, deleted}``. The row is written by a
store finish hook (``Store.add_finish_hook``), so in the same transaction as the write
itself, whatever made it (an app mutation, an import, the dashboard): the log and the
data commit together or not at all.

- ``cursor`` is one hub-wide counter (the ``meta`` row ``replication_changes_cursor``),
  bumped per changed document. The writer is serial, so counter order is commit order,
  and every change a reader can see has a lower cursor than any change it cannot: an
  edge that has applied up to cursor N has everything up to N.
- One row per document, moved to the newest cursor on each change: an edge that
  catches up after a week gets each document once, as it is now, not its history.
- A delete keeps its row as a tombstone (``deleted: true``) so an edge learns of it.
  Retention deletes (origin ``retention``) are not deletes of the data: no row.

``_system/replication:changes`` (public, checked against the gateway key like the
push) reads the log by the index ``by_table_cursor``: an ordinary indexed read, so a
subscribed edge's query reruns when a new row lands in its range. The contract of the
answer is ``gateway.replication.downlink_contract``.
"""

from __future__ import annotations

import math
from typing import Any, Final

from gateway.errors import ConvexError, FunctionError
from gateway.replication.batch import UNAUTHORIZED_CODE
from gateway.replication.credentials import KeyRing
from gateway.replication.downlink_contract import HUB_CHANGES_PATH, MAX_CHANGES_PAGE
from gateway.runtime.functions import RegisteredFunction
from gateway.schema import v
from gateway.store import DocChange, Transaction
from gateway.values import encode_index_key, key_successor

CHANGES_TABLE: Final = "_replication_changes"
BY_TABLE_CURSOR: Final = "by_table_cursor"
BY_TABLE_DOC: Final = "by_table_doc"
_COUNTER_KEY: Final = "replication_changes_cursor"

_CHANGES_ARGS: Final = {
    "gateway": v.string(),
    "key": v.string(),
    "table": v.string(),
    "cursor": v.float64(),
    "limit": v.optional(v.float64()),
}


def ensure_changes_table(tx: Transaction) -> None:
    """Create ``_replication_changes`` and its two indexes where missing (hub start)."""
    if tx.catalog.table(CHANGES_TABLE) is None:
        tx.create_table(CHANGES_TABLE)
        tx.create_index(CHANGES_TABLE, BY_TABLE_CURSOR, ("table", "cursor"))
        tx.create_index(CHANGES_TABLE, BY_TABLE_DOC, ("table", "docId"))


def log_changes(tx: Transaction, changes: list[DocChange]) -> None:
    """The finish hook: one log row per changed document of a ``down`` table."""
    down = [c for c in changes if tx.catalog.replication.get(c.table) == "down"]
    if not down or tx.origin == "retention":
        return
    ensure_changes_table(tx)
    cursor = _counter(tx)
    for change in down:
        cursor += 1
        _save_row(tx, change, float(cursor))
    tx.conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (_COUNTER_KEY, str(cursor))
    )


def _counter(tx: Transaction) -> int:
    row = tx.conn.execute("SELECT value FROM meta WHERE key = ?", (_COUNTER_KEY,)).fetchone()
    return 0 if row is None else int(row[0])


def _save_row(tx: Transaction, change: DocChange, cursor: float) -> None:
    info = tx.catalog.table(CHANGES_TABLE)
    assert info is not None  # ensure_changes_table ran
    prefix = encode_index_key([change.table, change.doc_id])
    old = next(
        (doc for _, _, doc in tx.scan(info.indexes[BY_TABLE_DOC], prefix, key_successor(prefix))),
        None,
    )
    body = {
        "table": change.table,
        "docId": change.doc_id,
        "cursor": cursor,
        "deleted": change.new is None,
    }
    if old is None:
        tx.insert(CHANGES_TABLE, body, tx.ts / 1_000_000)
    else:
        tx.replace(CHANGES_TABLE, old, body)


def changes_function(keys: KeyRing) -> RegisteredFunction:
    """The public changes query, checking callers against ``keys``."""

    async def changes(ctx: Any, args: dict[str, Any]) -> dict[str, Any]:
        if not keys.verify(args["gateway"], args["key"]):
            raise ConvexError({"code": UNAUTHORIZED_CODE})
        return await read_changes(ctx, args["table"], args["cursor"], _limit(args))

    return RegisteredFunction("query", "public", changes, _CHANGES_ARGS, path=HUB_CHANGES_PATH)


def _limit(args: dict[str, Any]) -> int:
    limit = args.get("limit")
    if limit is None:
        return MAX_CHANGES_PAGE
    if not math.isfinite(limit) or limit < 1 or limit != int(limit):
        raise FunctionError(f"limit must be a whole number of 1 or more, got {limit}")
    return min(int(limit), MAX_CHANGES_PAGE)


async def read_changes(ctx: Any, table: str, cursor: float, limit: int) -> dict[str, Any]:
    """``{changes, cursor, done}``: the log of ``table`` after ``cursor``, oldest first."""
    rows = await (
        ctx.db.system.query(CHANGES_TABLE)
        .with_index(BY_TABLE_CURSOR, lambda q: q.eq("table", table).gt("cursor", cursor))
        .take(limit)
    )
    out = []
    for row in rows:
        doc = None if row["deleted"] else await ctx.db.get(row["docId"])
        change = {"id": row["docId"], "cursor": row["cursor"], "deleted": doc is None}
        out.append({**change, "doc": doc})
    last = rows[-1]["cursor"] if rows else cursor
    return {"changes": out, "cursor": last, "done": len(rows) < limit}
