"""``Store.add_finish_hook``: a hook's writes belong to the job that ran it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store import DocChange, Store, Transaction


def _copy_to_log(tx: Transaction, changes: list[DocChange]) -> None:
    """Log each changed document of "items" in "log" (a hook as the hub's)."""
    for change in changes:
        if change.table == "items":
            tx.insert("log", {"docId": change.doc_id, "gone": change.new is None}, 1.0)


async def _count(store: Store, table: str) -> int:
    def count(tx: Transaction) -> int:
        info = tx.catalog.table(table)
        if info is None:
            return 0
        row = tx.conn.execute("SELECT count(*) FROM documents WHERE tbl = ?", (info.number,))
        return int(row.fetchone()[0])

    return (await store.read(count))[0]


async def test_a_hook_writes_in_its_jobs_transaction(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "d") as store:
        await store.write(lambda tx: (tx.create_table("items"), tx.create_table("log")))
        store.add_finish_hook(_copy_to_log)
        doc_id, _ = await store.write(lambda tx: tx.insert("items", {"n": 1.0}, 1.0))
        assert await _count(store, "log") == 1

        def insert_then_fail(tx: Transaction) -> None:
            tx.insert("items", {"n": 2.0}, 2.0)
            raise ValueError("refused")

        with pytest.raises(ValueError, match="refused"):
            await store.write(insert_then_fail)
        assert (await _count(store, "items"), await _count(store, "log")) == (1, 1)

        def failing_hook(tx: Transaction, changes: list[DocChange]) -> None:
            raise RuntimeError("hook refused")

        store.add_finish_hook(failing_hook)
        with pytest.raises(RuntimeError, match="hook refused"):  # the job fails whole
            await store.write(lambda tx: tx.insert("items", {"n": 3.0}, 3.0))
        assert (await _count(store, "items"), await _count(store, "log")) == (1, 1)
