"""The edge's outbox: epochs (import, clone, restart), seqs never reused, batch caps."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from edge_upstream_kit import write_app

from gateway import Gateway
from gateway.replication.outbox import Outbox
from gateway.snapshot import export_snapshot, import_snapshot
from gateway.store import Store, Transaction
from gateway.store.epoch import fingerprint
from gateway.store.layout import DB_FILENAME


async def _seqs(gw: Gateway) -> list[int]:
    rows, _ = await gw.store.read(
        lambda tx: tx.conn.execute("SELECT seq FROM change_log ORDER BY seq").fetchall()
    )
    return [r[0] for r in rows]


async def test_a_restart_keeps_the_epoch(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app")
    async with Gateway.open(app, tmp_path / "d") as gw:
        first = gw.store.epoch
    async with Gateway.open(app, tmp_path / "d") as gw:
        assert gw.store.epoch == first


async def test_a_copied_data_directory_bumps_the_epoch_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = write_app(tmp_path / "app")
    async with Gateway.open(app, tmp_path / "d") as gw:
        await gw.run_mutation("readings:add", {"n": 1})
        first = gw.store.epoch
    shutil.copytree(tmp_path / "d", tmp_path / "clone")
    with caplog.at_level(logging.WARNING, logger="gateway.store"):
        async with Gateway.open(app, tmp_path / "clone") as gw:
            assert gw.store.epoch == first + 1
    assert any("inode" in r.getMessage() and "path" in r.getMessage() for r in caplog.records)


async def test_another_machine_bumps_the_epoch(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app")
    data = tmp_path / "d"
    async with Gateway.open(app, data) as gw:
        first = gw.store.epoch
    # The same card in another board: the kept fingerprint names another machine.
    conn = sqlite3.connect(data / DB_FILENAME)
    kept = json.loads(conn.execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()[0])
    kept["machine"] = "another-board"
    conn.execute("UPDATE meta SET value=? WHERE key='fingerprint'", (json.dumps(kept),))
    conn.commit()
    conn.close()
    async with Gateway.open(app, data) as gw:
        assert gw.store.epoch == first + 1
    async with Gateway.open(app, data) as gw:
        assert gw.store.epoch == first + 1  # and stays there


def _edit_kept_fingerprint(data: Path, edit: Callable[[dict[str, str]], None]) -> None:
    conn = sqlite3.connect(data / DB_FILENAME)
    kept = json.loads(conn.execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()[0])
    edit(kept)
    conn.execute("UPDATE meta SET value=? WHERE key='fingerprint'", (json.dumps(kept),))
    conn.commit()
    conn.close()


async def test_a_directory_restored_in_place_bumps_the_epoch(tmp_path: Path) -> None:
    """Deleted and copied back from a backup at the same path: the directory's inode
    number is often the freed one again, and only its generation tells (found by
    tests/e2e/test_replication_restore.py, where the edge then lost new documents)."""
    app = write_app(tmp_path / "app")
    data = tmp_path / "d"
    async with Gateway.open(app, data) as gw:
        first = gw.store.epoch
    shutil.copytree(data, tmp_path / "backup")
    shutil.rmtree(data)
    shutil.copytree(tmp_path / "backup", data)
    async with Gateway.open(app, data) as gw:
        assert gw.store.epoch == first + 1


async def test_the_inode_generation_counts_and_its_absence_does_not(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app")
    data = tmp_path / "d"
    async with Gateway.open(app, data) as gw:
        first = gw.store.epoch
    if "generation" not in fingerprint(data):
        pytest.skip("this file system tells no inode generation")
    _edit_kept_fingerprint(data, lambda kept: kept.pop("generation"))  # kept by an older one
    async with Gateway.open(app, data) as gw:
        assert gw.store.epoch == first
    _edit_kept_fingerprint(data, lambda kept: kept.update(generation="12345"))
    async with Gateway.open(app, data) as gw:
        assert gw.store.epoch == first + 1


async def test_an_import_bumps_the_epoch(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app")
    async with Gateway.open(app, tmp_path / "d") as gw:
        await gw.run_mutation("readings:add", {"n": 1})
        await export_snapshot(gw, tmp_path / "snap.zip")
    async with Gateway.open(app, tmp_path / "d2") as gw:
        before = gw.store.epoch
        await import_snapshot(gw, tmp_path / "snap.zip")
        assert gw.store.epoch == before + 1
    async with Gateway.open(app, tmp_path / "d2") as gw:
        assert gw.store.epoch == before + 1  # durable


async def test_seqs_are_never_reused_after_pruning(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app")
    async with Gateway.open(app, tmp_path / "d") as gw:
        for n in range(5):
            await gw.run_mutation("readings:add", {"n": n})
        await gw.run_mutation("readings:local", {"n": 1})  # local tables are not logged
        assert await _seqs(gw) == [1, 2, 3, 4, 5]
        await Outbox(gw.store).acknowledge(5)  # everything pruned
        assert await _seqs(gw) == []
    async with Gateway.open(app, tmp_path / "d") as gw:  # across a restart too
        await gw.run_mutation("readings:add", {"n": 9})
        assert await _seqs(gw) == [6]
        assert await Outbox(gw.store).cursor() == 5


async def test_a_layout_1_store_is_migrated_keeping_its_seqs(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app")
    data = tmp_path / "d"
    async with Gateway.open(app, data) as gw:
        for n in range(3):
            await gw.run_mutation("readings:add", {"n": n})
    # Rebuild change_log as layout 1 made it (no AUTOINCREMENT) and mark the store so.
    conn = sqlite3.connect(data / DB_FILENAME, isolation_level=None)
    conn.executescript(
        """
        BEGIN;
        CREATE TABLE old_log (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, op TEXT NOT NULL,
            tbl TEXT NOT NULL, doc_id TEXT NOT NULL, after TEXT, origin TEXT NOT NULL);
        INSERT INTO old_log SELECT seq, ts, op, tbl, doc_id, after, origin FROM change_log;
        DROP TABLE change_log;
        ALTER TABLE old_log RENAME TO change_log;
        UPDATE meta SET value = '1' WHERE key = 'layout_version';
        COMMIT;
        """
    )
    conn.close()
    async with Gateway.open(app, data) as gw:
        assert await _seqs(gw) == [1, 2, 3]
        await Outbox(gw.store).acknowledge(3)
        await gw.run_mutation("readings:add", {"n": 3})
        assert await _seqs(gw) == [4]
        sql, _ = await gw.store.read(
            lambda tx: tx.conn.execute(
                "SELECT sql FROM sqlite_master WHERE name = 'change_log'"
            ).fetchone()[0]
        )
        assert "AUTOINCREMENT" in sql


async def test_batches_respect_the_caps_and_carry_every_seq(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app")
    async with Gateway.open(app, tmp_path / "d") as gw:
        await gw.run_mutation("readings:add_many", {"start": 0, "count": 250})
        docs = await gw.run_query("readings:count", {})
        assert docs == 250
        by_count = Outbox(gw.store, max_changes=100)
        cuts, after = [], 0
        while (cut := await by_count.next_cut(after)) is not None:
            cuts.append(cut)
            after = cut.last
        assert [(c.first, c.last) for c in cuts] == [(1, 100), (101, 200), (201, 250)]
        one_size = cuts[0].size_bytes // 100
        by_bytes = Outbox(gw.store, max_bytes=one_size * 10)
        cut = await by_bytes.next_cut(0)
        assert cut is not None and 1 <= len(cut.changes) <= 10
        assert cut.size_bytes <= one_size * 10
        change = cut.changes[0]
        assert change["op"] == "insert" and change["table"] == "readings"
        assert change["doc"]["n"] == 0 and change["doc"]["_id"] == change["id"]
        assert int(change["ts"]) > 0


async def test_one_change_larger_than_the_byte_cap_still_goes_alone(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app")
    async with Gateway.open(app, tmp_path / "d") as gw:
        await gw.run_mutation("readings:add_many", {"start": 0, "count": 3})
        cut = await Outbox(gw.store, max_bytes=1).next_cut(0)
        assert cut is not None and (cut.first, cut.last) == (1, 1)


async def test_each_row_carries_its_clock_trust_and_batches_never_mix_them(
    tmp_path: Path,
) -> None:
    day_ns = 24 * 3600 * 10**9
    wall = [1_700_000_000 * 10**9]
    synced = [False]
    store = await Store.open(
        tmp_path / "d",
        replication={"readings": "up"},
        wall_ns=lambda: wall[0],
        synced=lambda: synced[0],
    )
    async with store:

        def insert(tx: Transaction) -> None:
            if tx.catalog.table("readings") is None:
                tx.create_table("readings")
            tx.insert("readings", {"n": 1.0}, wall[0] / 1e6)

        await store.write(insert)  # a sane clock: trusted
        wall[0] += 2 * day_ns  # a leap no NTP vouches for: the HLC does not follow
        await store.write(insert)
        await store.write(insert)
        synced[0] = True  # NTP says the leap was right
        await store.write(insert)
        outbox, after, cuts = Outbox(store), 0, []
        while (cut := await outbox.next_cut(after)) is not None:
            cuts.append((cut.first, cut.last, cut.clock_trusted))
            after = cut.last
    assert cuts == [(1, 1, True), (2, 3, False), (4, 4, True)]
