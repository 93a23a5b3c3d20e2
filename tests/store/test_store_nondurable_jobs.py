"""Writer jobs submitted ``durable=False`` (the uplink's cursor): they COMMIT without an
fsync of their own (``synchronous = NORMAL``), never take a durable job into their batch,
and leave the connection at FULL for every batch after them."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.store import Store, Transaction

FULL, NORMAL = 2, 1


def _recording(levels: list[int]) -> Callable[[sqlite3.Connection], None]:
    def commit(conn: sqlite3.Connection) -> None:
        levels.append(conn.execute("PRAGMA synchronous").fetchone()[0])
        conn.execute("COMMIT")

    return commit


def _put(
    key: str, gate: threading.Event | None = None, started: threading.Event | None = None
) -> Callable[[Transaction], None]:
    def work(tx: Transaction) -> None:
        if started is not None:
            started.set()
        if gate is not None:
            assert gate.wait(10)
        tx.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, 'x')", (key,))

    return work


async def _held_open(
    store: Store, first_durable: bool, second_durable: bool
) -> tuple[asyncio.Task[object], asyncio.Task[object]]:
    """A first job held inside its batch until a second one is queued behind it."""
    gate, started = threading.Event(), threading.Event()
    first = asyncio.ensure_future(store.write(_put("first", gate, started), durable=first_durable))
    assert await asyncio.to_thread(started.wait, 10)
    second = asyncio.ensure_future(store.write(_put("second"), durable=second_durable))
    await asyncio.sleep(0.05)  # the second job reaches the writer's queue
    gate.set()
    await asyncio.gather(first, second)
    return first, second


@pytest.mark.parametrize(
    ("first_durable", "second_durable", "levels_seen"),
    [
        (False, True, [NORMAL, FULL]),  # a durable job waits for a batch of its own
        (True, False, [FULL]),  # a non-durable job may ride in a durable batch
    ],
)
async def test_a_durable_job_never_commits_without_its_fsync(
    tmp_path: Path, first_durable: bool, second_durable: bool, levels_seen: list[int]
) -> None:
    levels: list[int] = []
    store = await Store.open(tmp_path, commit_fn=_recording(levels))
    try:
        commits = store.writer.stats.commits
        await _held_open(store, first_durable, second_durable)
        assert store.writer.stats.commits == commits + len(levels_seen)
        assert levels[-len(levels_seen) :] == levels_seen
    finally:
        await store.close()


async def test_non_durable_writes_are_committed_and_the_next_batch_is_full(
    tmp_path: Path,
) -> None:
    levels: list[int] = []
    store = await Store.open(tmp_path, commit_fn=_recording(levels))
    try:
        await store.write(_put("a"), durable=False)
        await store.write(_put("b"), durable=False)
        await store.write(_put("c"))
        assert levels[-3:] == [NORMAL, NORMAL, FULL]
        keys, _ = await store.read(
            lambda tx: [k for (k,) in tx.conn.execute("SELECT key FROM meta WHERE value = 'x'")]
        )
        assert sorted(keys) == ["a", "b", "c"]
    finally:
        await store.close()
    conn = sqlite3.connect(tmp_path / "outpost.sqlite3")  # and they are on disk
    assert conn.execute("SELECT count(*) FROM meta WHERE value = 'x'").fetchone()[0] == 3
    conn.close()


async def test_a_failing_non_durable_job_leaves_the_connection_full(tmp_path: Path) -> None:
    levels: list[int] = []
    store = await Store.open(tmp_path, commit_fn=_recording(levels))
    try:

        def boom(tx: Transaction) -> None:
            raise RuntimeError("boom")

        try:
            await store.write(boom, durable=False)
        except RuntimeError:
            pass
        else:
            raise AssertionError("the failing job did not fail")
        await store.write(_put("after"))
        assert levels[-1] == FULL
    finally:
        await store.close()
