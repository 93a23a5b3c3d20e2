"""Document counts per table, kept current in memory from the commits the store publishes.

Counting a table means walking its ``by_creation_time`` index rows: fine once, far too
slow on every change of a table of millions (the dashboard's table list is a live query).
So each table is counted once, in one read job (one snapshot at ts ``T``), right after
start, and from then on every published commit adjusts the counts: +1 per inserted
document, -1 per deleted one. A commit is applied only when it is newer than ``T``: the
listener is subscribed before the count starts, and commits that arrive while it runs
are held and sorted out once ``T`` is known, so none is counted twice or missed.

The counts follow the newest published commit, so a live query can see a count one
commit ahead of its own snapshot: a dashboard figure, not a transactional one.

A live query that read the counts before they were in must run again once they are:
``on_ready`` (the sync engine's ``invalidate_all``) is called when they arrive, and once
more ``again_after_s`` later (longer than a query may run): a rerun that was in flight
at the first call, reading no counts, ends with a snapshot no older than that call's
mark and would clear it. The gateway waits ``Dashboard.COUNT_WAIT_S`` for the count at
start, so on all but a big store it is in before anyone can subscribe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from gateway.store import BY_CREATION_TIME, Committed, Store, Transaction

log = logging.getLogger("gateway.dashboard")


class TableCounts:
    """``count(table)``: documents in it now, or None until the first count is done."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._counts: dict[str, int] | None = None
        self._held: list[Committed] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._counted = asyncio.Event()

    def start(self, on_ready: Callable[[], None] | None = None, again_after_s: float = 0) -> None:
        """Listen to commits, and count every table in the background."""
        self._unsubscribe = self._store.write_log.subscribe(self._on_commits)
        self._task = asyncio.create_task(
            self._count(on_ready, again_after_s), name="outpost-table-counts"
        )

    async def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the first count; whether it is in."""
        try:
            await asyncio.wait_for(self._counted.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop listening and counting (idempotent)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    @property
    def ready(self) -> bool:
        return self._counts is not None

    def count(self, table: str) -> int | None:
        counts = self._counts
        return None if counts is None else counts.get(table, 0)

    async def _count(self, on_ready: Callable[[], None] | None, again_after_s: float) -> None:
        try:
            counted, ts = await self._store.read(_count_tables)
        except Exception:  # noqa: BLE001 - the page shows no counts; the gateway runs on
            log.exception("counting the tables' documents failed")
            if self._unsubscribe is not None:  # nothing will ever use the held commits
                self._unsubscribe()
                self._unsubscribe = None
            self._held = []
            return
        self._counts = counted
        held, self._held = self._held, []
        self._apply([c for c in held if c.ts > ts])
        self._counted.set()
        if on_ready is not None:
            on_ready()
            if again_after_s > 0:
                await asyncio.sleep(again_after_s)
                on_ready()

    def _on_commits(self, commits: list[Committed]) -> None:
        if self._counts is None:
            self._held.extend(Committed(c.ts, [], c.changes, c.tables) for c in commits)
        else:
            self._apply(commits)

    def _apply(self, commits: list[Committed]) -> None:
        counts = self._counts
        assert counts is not None
        for commit in commits:
            for change in commit.changes:
                if change.old is None and change.new is not None:
                    counts[change.table] = counts.get(change.table, 0) + 1
                elif change.old is not None and change.new is None:
                    counts[change.table] = counts.get(change.table, 0) - 1


def _count_tables(tx: Transaction) -> dict[str, int]:
    """Every table's documents, counted from its ``by_creation_time`` index rows."""
    counts: dict[str, int] = {}
    for name, info in tx.catalog.by_name.items():
        index = info.indexes[BY_CREATION_TIME]
        row = tx.conn.execute(
            "SELECT count(*) FROM indexes WHERE index_id = ?", (index.index_id,)
        ).fetchone()
        counts[name] = int(row[0])
    return counts
