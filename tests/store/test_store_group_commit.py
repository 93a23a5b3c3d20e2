"""The serial writer: group commit is real, failures stay contained, COMMIT gates answers."""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway import Gateway, Settings
from gateway.errors import CommitError

APP = {
    "schema": """
        from gateway import define_schema, define_table, v
        schema = define_schema({
            "items": define_table({"n": v.float64(), "tag": v.string()}).index("by_tag", ["tag"]),
        })
    """,
    "items": """
        from gateway import mutation, query, v, ConvexError

        @mutation(args={"n": v.float64(), "tag": v.string()})
        async def add(ctx, args):
            if args["tag"] == "boom":
                await ctx.db.insert("items", args)   # written, then rolled back
                raise ConvexError("boom")
            return await ctx.db.insert("items", args)

        @mutation(args={"reads": v.float64()})
        async def read_a_lot(ctx, args):
            for _ in range(int(args["reads"])):
                await ctx.db.query("items").with_index("by_tag", lambda q: q.eq("tag", "x")).first()
            return await ctx.db.insert("items", {"n": 0.0, "tag": "reader"})

        @query(args={})
        async def count(ctx, args):
            return len(await ctx.db.query("items").collect())
    """,
}


async def test_64_concurrent_callers_share_commits(make_app, tmp_path: Path) -> None:
    async with Gateway.open(make_app(**APP), tmp_path / "d") as gw:
        stats = gw.store.writer.stats
        jobs_before, commits_before = stats.jobs, stats.commits
        stats.batch_sizes.clear()

        async def caller(c: int) -> None:
            for i in range(10):
                await gw.run_mutation("items:add", {"n": float(i), "tag": f"c{c}"})

        await asyncio.gather(*(caller(c) for c in range(64)))
        median = statistics.median(stats.batch_sizes)
        commits = stats.commits - commits_before
        print(f"640 mutations: {commits} commits, median batch {median}")
        assert stats.jobs - jobs_before == 640
        assert median > 1
        assert commits <= 640 / 10
        assert await gw.run_query("items:count") == 640


async def test_one_raising_mutation_leaves_the_other_63_committed(make_app, tmp_path) -> None:
    async with Gateway.open(make_app(**APP), tmp_path / "d") as gw:
        tags = ["ok"] * 63 + ["boom"]
        results = await asyncio.gather(
            *(
                gw.call("mutation", "items:add", {"n": float(i), "tag": t})
                for i, t in enumerate(tags)
            )
        )
        assert [r.ok for r in results].count(True) == 63
        failed = [r for r in results if not r.ok]
        assert len(failed) == 1 and failed[0].error_data == "boom"
        assert await gw.run_query("items:count") == 63
        assert max(gw.store.writer.stats.batch_sizes) > 1  # it really shared a batch


async def test_no_caller_is_answered_before_commit_returns(make_app, tmp_path) -> None:
    release = threading.Event()
    committing = threading.Event()
    armed = threading.Event()

    def held_commit(conn: sqlite3.Connection) -> None:
        if armed.is_set():
            committing.set()
            release.wait(10)
        conn.execute("COMMIT")

    async with Gateway.open(make_app(**APP), tmp_path / "d", commit_fn=held_commit) as gw:
        armed.set()
        calls = [
            asyncio.create_task(gw.run_mutation("items:add", {"n": 1.0, "tag": "t"}))
            for _ in range(8)
        ]
        await asyncio.to_thread(committing.wait, 10)
        await asyncio.sleep(0.05)  # give any premature answer every chance to arrive
        assert not any(c.done() for c in calls)
        release.set()
        ids = await asyncio.gather(*calls)
        assert len(set(ids)) == 8


async def test_a_failed_commit_answers_nobody_with_success_and_moves_no_state(
    make_app, tmp_path
) -> None:
    fail = threading.Event()

    def flaky_commit(conn: sqlite3.Connection) -> None:
        if fail.is_set():
            raise sqlite3.OperationalError("database or disk is full")
        conn.execute("COMMIT")

    async with Gateway.open(make_app(**APP), tmp_path / "d", commit_fn=flaky_commit) as gw:
        await gw.run_mutation("items:add", {"n": 1.0, "tag": "before"})
        store = gw.store
        clock_before = store.clock.last_ts_ns
        catalog_before = store.catalog
        log_before = len(store.write_log)
        fail.set()
        results = await asyncio.gather(
            *(gw.call("mutation", "items:add", {"n": 2.0, "tag": "lost"}) for _ in range(16))
        )
        assert not any(r.ok for r in results)
        assert all(isinstance(r.error, CommitError) for r in results)
        assert "disk is full" in results[0].error_message
        assert store.clock.last_ts_ns == clock_before
        assert store.catalog is catalog_before
        assert len(store.write_log) == log_before
        fail.clear()
        assert await gw.run_query("items:count") == 1
        # and the writer carries on
        await gw.run_mutation("items:add", {"n": 3.0, "tag": "after"})
        assert await gw.run_query("items:count") == 2


async def test_a_function_costs_one_handoff_however_many_reads(make_app, tmp_path) -> None:
    async with Gateway.open(make_app(**APP), tmp_path / "d") as gw:
        writer, readers = gw.store.writer, gw.store.readers
        await asyncio.wait_for(gw.scheduler.idle.wait(), 5)  # its first look for due jobs
        before_w, before_r = writer.stats.handoffs, readers.handoffs
        for _ in range(5):
            await gw.run_mutation("items:read_a_lot", {"reads": 200.0})
        await gw.run_query("items:count")
        # one submission per call (and one batched answer per commit)
        submitted = writer.stats.handoffs - before_w
        assert submitted <= 5 * 2
        assert readers.handoffs - before_r == 1


async def test_writes_are_durable_in_the_file_after_close(make_app, tmp_path) -> None:
    async with Gateway.open(make_app(**APP), tmp_path / "d") as gw:
        ids = [await gw.run_mutation("items:add", {"n": 1.0, "tag": "t"}) for _ in range(3)]
    conn = sqlite3.connect(tmp_path / "d" / "outpost.sqlite3")
    found = {r[0] for r in conn.execute("SELECT id FROM documents")}
    conn.close()
    assert set(ids) <= found


@pytest.mark.parametrize("interval_ms", [20.0])
async def test_commit_interval_batches_sequential_callers(make_app, tmp_path, interval_ms) -> None:
    settings = Settings(commit_interval_ms=interval_ms)
    async with Gateway.open(make_app(**APP), tmp_path / "d", settings) as gw:
        before = gw.store.writer.stats.commits
        await asyncio.gather(
            *(gw.run_mutation("items:add", {"n": 1.0, "tag": "t"}) for _ in range(20))
        )
        assert gw.store.writer.stats.commits - before <= 2


async def _until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_a_commit_interval_set_on_purpose_groups_long_jobs_too(tmp_path: Path) -> None:
    from gateway.store import Store

    async with await Store.open(tmp_path / "d", commit_interval_ms=500) as store:
        stats = store.writer.stats

        def long_job(tx: object) -> None:
            deadline = time.monotonic() + 0.05
            while time.monotonic() < deadline:
                pass

        stats.batch_sizes.clear()
        await asyncio.gather(*(store.write(long_job) for _ in range(3)))
        assert list(stats.batch_sizes) == [3]  # 150 ms of jobs, inside the 500 ms interval
