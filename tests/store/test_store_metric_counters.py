"""The writer's counters that ``/metrics`` serves: fsyncs count durable COMMITs only,
the batch-size histogram one observation per COMMIT, the queue depth what waits."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

from gateway.store import Store, Transaction


def _put(key: str, gate: threading.Event | None = None) -> Callable[[Transaction], None]:
    def work(tx: Transaction) -> None:
        if gate is not None:
            assert gate.wait(10)
        tx.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, 'x')", (key,))

    return work


async def test_only_durable_commits_count_as_fsyncs(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "data") as store:
        stats = store.writer.stats
        commits, fsyncs = stats.commits, stats.durable_commits
        await store.write(_put("cursor"), durable=False)
        assert (stats.commits, stats.durable_commits) == (commits + 1, fsyncs)
        await store.write(_put("reading"))
        assert (stats.commits, stats.durable_commits) == (commits + 2, fsyncs + 1)
        assert stats.batch_histogram.count == stats.commits
        assert stats.batch_histogram.sum == stats.jobs


async def test_the_queue_depth_counts_jobs_behind_a_running_batch(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "data") as store:
        gate = threading.Event()
        first = asyncio.ensure_future(store.write(_put("first", gate)))
        behind = [asyncio.ensure_future(store.write(_put(f"n{i}"))) for i in range(3)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while store.writer.queued < 3:  # the writer thread took the first; three wait
            assert loop.time() < deadline, store.writer.queued
            await asyncio.sleep(0.01)
        gate.set()
        await asyncio.gather(first, *behind)
        assert store.writer.queued == 0
        assert store.readers.queued == 0
