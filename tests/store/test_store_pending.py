"""Held-back insert rows (``PendingWrites``): every read sees them, failures drop them.

Jobs here share one batch (a long ``commit_interval_ms`` and concurrent submits; each
test asserts the batch really was shared), so rows of earlier jobs are still held
back when a later job reads or fails.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway import Gateway, Settings
from gateway.store import Transaction
from gateway.store.layout import DB_FILENAME

APP = {
    "schema": """
        from gateway import define_schema, define_table, v
        schema = define_schema({
            "items": define_table({"n": v.float64(), "tag": v.string()})
                .index("by_tag", ["tag"]).replicate("up"),
        })
    """,
    "items": """
        from gateway import query

        @query(args={})
        async def tags(ctx, args):
            return sorted(d["tag"] for d in await ctx.db.query("items").collect())
    """,
}

SETTINGS = Settings(commit_interval_ms=100)


class Boom(Exception):
    pass


def insert(tag: str, ids: list[str] | None = None) -> Callable[[Transaction], str]:
    def work(tx: Transaction) -> str:
        doc_id = tx.insert("items", {"n": 1.0, "tag": tag}, tx.ts / 1e6)
        if ids is not None:
            ids.append(doc_id)
        return doc_id

    return work


async def one_batch(gw: Gateway, *works: Callable[[Transaction], Any]) -> list[Any]:
    """Submit ``works`` in order into one batch; results or exceptions, in order."""
    stats = gw.store.writer.stats
    commits = stats.commits + stats.failed_commits
    tasks = []
    for work in works:
        tasks.append(asyncio.ensure_future(gw.store.write(work)))
        await asyncio.sleep(0)  # the job is queued before the next one
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert stats.commits + stats.failed_commits == commits + 1, "the jobs did not share one batch"
    return [r if isinstance(r, BaseException) else r[0] for r in results]


def stored(data_dir: Path) -> tuple[list[str], int, list[str]]:
    """(tags of documents, index rows without a document, change-log tags in order)."""
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        docs = [
            row[0]
            for row in conn.execute(
                "SELECT json_extract(body, '$.tag') FROM documents d JOIN tables t "
                "ON d.tbl = t.number WHERE t.name = 'items' ORDER BY 1"
            )
        ]
        orphans = conn.execute(
            "SELECT count(*) FROM indexes WHERE doc_id NOT IN (SELECT id FROM documents)"
        ).fetchone()[0]
        log = [
            row[0]
            for row in conn.execute(
                "SELECT json_extract(after, '$.tag') FROM change_log ORDER BY seq"
            )
        ]
        return docs, orphans, log
    finally:
        conn.close()


def index_rows_per_doc(data_dir: Path) -> set[int]:
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    try:
        counts = conn.execute(
            "SELECT count(i.key) FROM documents d JOIN tables t ON d.tbl = t.number "
            "LEFT JOIN indexes i ON i.doc_id = d.id WHERE t.name = 'items' GROUP BY d.id"
        )
        return {row[0] for row in counts}
    finally:
        conn.close()


async def test_a_read_sees_the_rows_earlier_jobs_hold_back(make_app, tmp_path: Path) -> None:
    ids: list[str] = []
    seen: list[Any] = []

    def reader(tx: Transaction) -> None:
        seen.append(tx.get(ids[0]))

    data = tmp_path / "d"
    async with Gateway.open(make_app(**APP), data, SETTINGS) as gw:
        await one_batch(gw, insert("a", ids), reader)
        assert seen[0] is not None and seen[0]["tag"] == "a"
        assert await gw.run_query("items:tags") == ["a"]
    assert stored(data) == (["a"], 0, ["a"])


async def test_a_job_failing_after_a_read_keeps_the_earlier_jobs_rows(
    make_app, tmp_path: Path
) -> None:
    """B's read writes A's held rows inside B's savepoint; B's rollback must not lose them."""
    ids: list[str] = []

    def read_insert_fail(tx: Transaction) -> None:
        assert tx.get(ids[0]) is not None
        tx.insert("items", {"n": 2.0, "tag": "b"}, tx.ts / 1e6)
        raise Boom

    data = tmp_path / "d"
    async with Gateway.open(make_app(**APP), data, SETTINGS) as gw:
        results = await one_batch(gw, insert("a", ids), read_insert_fail, insert("c"))
        assert isinstance(results[1], Boom)
        assert await gw.run_query("items:tags") == ["a", "c"]
    assert stored(data) == (["a", "c"], 0, ["a", "c"])
    assert index_rows_per_doc(data) == {2}  # by_creation_time and by_tag, nothing else


def insert_twice_fail(tx: Transaction) -> None:
    insert("b1")(tx)
    insert("b2")(tx)
    raise Boom


def read_own_insert_fail(tx: Transaction) -> None:
    doc_id = insert("b")(tx)
    assert tx.get(doc_id) is not None  # read-your-writes: flushed inside its savepoint
    insert("b-after-read")(tx)
    raise Boom


@pytest.mark.parametrize("failing", [insert_twice_fail, read_own_insert_fail])
async def test_a_failing_job_leaves_no_trace_and_its_neighbours_stay(
    make_app, tmp_path, failing: Callable[[Transaction], None]
) -> None:
    """Its rows still held (no read) or already flushed (it read its own insert)."""
    data = tmp_path / "d"
    async with Gateway.open(make_app(**APP), data, SETTINGS) as gw:
        results = await one_batch(gw, insert("a"), failing, insert("c"))
        assert isinstance(results[1], Boom)
    assert stored(data) == (["a", "c"], 0, ["a", "c"])


async def test_a_failed_nested_block_drops_only_its_rows(make_app, tmp_path) -> None:
    def nested(tx: Transaction) -> None:
        insert("outer-1")(tx)
        with pytest.raises(Boom), tx.savepoint():
            insert("inner-held")(tx)
            raise Boom
        with pytest.raises(Boom), tx.savepoint():
            doc_id = insert("inner-read")(tx)
            assert tx.get(doc_id) is not None
            raise Boom
        insert("outer-2")(tx)

    data = tmp_path / "d"
    async with Gateway.open(make_app(**APP), data, SETTINGS) as gw:
        await one_batch(gw, insert("a"), nested)
    assert stored(data) == (["a", "outer-1", "outer-2"], 0, ["a", "outer-1", "outer-2"])


async def test_held_rows_of_a_batch_whose_commit_fails_are_not_applied(make_app, tmp_path) -> None:
    data = tmp_path / "d"
    async with Gateway.open(make_app(**APP), data, SETTINGS) as gw:
        writer = gw.store.writer

        def disk_full(conn: sqlite3.Connection) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        writer.commit_fn = disk_full
        results = await one_batch(gw, insert("a"), insert("b"))
        assert all(isinstance(r, Exception) for r in results)
        writer.commit_fn = lambda conn: conn.execute("COMMIT")  # type: ignore[assignment]
        await one_batch(gw, insert("c"))
    assert stored(data) == (["c"], 0, ["c"])
