"""The WAL checkpointer: commits never checkpoint; a thread of the store does, and stops
with it."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from gateway.store import Store
from gateway.store.checkpointer import BUSY_FRAMES, MAX_INTERVAL_S, MIN_INTERVAL_S

ROWS = 3000


def _fill(tx: object, start: int) -> None:
    conn = tx.conn  # type: ignore[attr-defined]
    conn.execute("CREATE TABLE IF NOT EXISTS bulk (n INTEGER PRIMARY KEY, pad TEXT)")
    conn.executemany(
        "INSERT INTO bulk VALUES (?, ?)", ((n, "x" * 1000) for n in range(start, start + ROWS))
    )


async def _until(check, timeout_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_writer_never_checkpoints_and_the_checkpointer_does(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "d") as store:
        (value, _ts) = await store.write(
            lambda tx: tx.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
        assert value == 0
        before = store.checkpointer.checkpoints
        for start in range(0, 4 * ROWS, ROWS):
            await store.write(lambda tx, s=start: _fill(tx, s))
        # 12 MB committed, three times SQLite's own threshold; commits copy none of it
        # to the database file, the thread does, soon after.
        db = tmp_path / "d" / "outpost.sqlite3"
        await _until(
            lambda: store.checkpointer.checkpoints > before and db.stat().st_size > 10_000_000
        )


async def test_a_quiet_store_is_checkpointed_less_and_less_often(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "d") as store:
        checkpointer = store.checkpointer
        for n in range(4):
            seen = checkpointer.checkpoints
            await store.write(lambda tx: tx.conn.execute("CREATE TABLE IF NOT EXISTS t (x)"))
            await _until(lambda s=seen: checkpointer.checkpoints > s)  # type: ignore[misc]
            assert checkpointer.interval_s == min(MAX_INTERVAL_S, MIN_INTERVAL_S * 2 ** (n + 1))
            if checkpointer.interval_s > 2:
                break
    assert BUSY_FRAMES > 10  # a one-table commit is a few frames: quiet


async def test_close_stops_the_thread_and_leaves_no_wal(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "d")
    await store.write(lambda tx: _fill(tx, 0))
    assert any(t.name == "outpost-checkpointer" for t in threading.enumerate())
    await store.close()
    assert not any(t.name == "outpost-checkpointer" for t in threading.enumerate())
    assert not (tmp_path / "d" / "outpost.sqlite3-wal").exists()
    reopened = await Store.open(tmp_path / "d")
    try:
        (count, _ts) = await reopened.read(
            lambda tx: tx.conn.execute("SELECT count(*) FROM bulk").fetchone()[0]
        )
        assert count == ROWS
    finally:
        await reopened.close()


async def test_a_failing_checkpoint_is_said_once_and_retried(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging
    import sqlite3

    from gateway.store.checkpointer import Checkpointer

    class Refusing:
        def execute(self, sql: str) -> object:
            raise sqlite3.OperationalError("database or disk is full")

    checkpointer = Checkpointer(lambda: sqlite3.connect(":memory:"))
    with caplog.at_level(logging.DEBUG, logger="gateway.store"):
        for _ in range(3):
            checkpointer._checkpoint(Refusing())  # type: ignore[arg-type]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "disk is full" in warnings[0].getMessage()
    assert checkpointer.failing and checkpointer.checkpoints == 0
