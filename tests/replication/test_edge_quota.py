"""The outbox quota with the upstream down: ``block`` refuses, ``drop_oldest`` drops and
counts; neither corrupts the store, and the link's return drains what is left."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from edge_upstream_kit import KEY, FakeUpstream, eventually, write_app

from gateway import Gateway
from gateway.config import Settings
from gateway.errors import ConfigError
from gateway.replication.client import PushClient
from gateway.replication.uplink import Uplink
from gateway.store.layout import DB_FILENAME
from gateway.store.quota import BYTES_KEY, DROPPED_KEY, ROW_BYTES_SQL, OutboxFullError

LIMIT = 20_000


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    fake.down = True
    await fake.start()
    yield fake
    await fake.stop()


def _uplink(gw: Gateway, url: str) -> Uplink:
    client = PushClient(url, connect_timeout_s=0.5, request_timeout_s=5.0)
    return Uplink(
        gw.store,
        client,
        key=KEY,
        schema=lambda: "test-schema",
        backoff_min_s=0.05,
        backoff_max_s=0.2,
        unauthorized_retry_s=0.2,
        idle_poll_s=0.2,
    )


async def _outbox(gw: Gateway) -> tuple[int, int, int, int]:
    """(entries, counted bytes by a scan, meta's running total, meta's dropped count)."""

    def read(tx: object) -> tuple[int, int, int, int]:
        conn = tx.conn  # type: ignore[attr-defined]
        n, size = conn.execute(
            f"SELECT count(*), coalesce(sum({ROW_BYTES_SQL}), 0) FROM change_log"
        ).fetchone()
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        return int(n), int(size), int(meta.get(BYTES_KEY, 0)), int(meta.get(DROPPED_KEY, 0))

    value, _ = await gw.store.read(read)
    return value


def _integrity(data: Path) -> None:
    conn = sqlite3.connect(data / DB_FILENAME)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


async def test_block_refuses_new_writes_and_keeps_what_it_accepted(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    app = write_app(tmp_path / "app")
    settings = Settings(outbox_max_bytes=LIMIT, outbox_overflow="block", upstream_url=upstream.url)
    async with Gateway.open(app, tmp_path / "d", settings) as gw:
        uplink = _uplink(gw, upstream.url)
        await uplink.start()
        try:
            accepted = 0
            with pytest.raises(Exception) as refused:
                for n in range(10_000):
                    await gw.run_mutation("readings:add", {"n": n})
                    accepted += 1
            assert "outbox_max_bytes" in str(refused.value) and "block" in str(refused.value)
            await gw.run_mutation("readings:local", {"n": 1})  # local tables still write
            entries, scanned, total, dropped = await _outbox(gw)
            assert entries == accepted and total == scanned >= LIMIT and dropped == 0
            upstream.down = False  # the link returns: everything accepted arrives once
            await eventually(lambda: len(upstream.applied) == accepted)
            assert [s for _, s in upstream.seqs()] == list(range(1, accepted + 1))
            await eventually(lambda: uplink.acked == accepted)
            await gw.run_mutation("readings:add", {"n": -1})  # room again
            await eventually(lambda: len(upstream.applied) == accepted + 1)
            await eventually(lambda: uplink.acked == accepted + 1)
            entries, scanned, total, _ = await _outbox(gw)
            assert entries == 0 and scanned == 0
        finally:
            await uplink.close()
    _integrity(tmp_path / "d")


def test_the_refusal_names_the_setting() -> None:
    assert issubclass(OutboxFullError, Exception)
    with pytest.raises(ConfigError, match="outbox_overflow"):
        Settings(outbox_overflow="drop_newest")


async def test_drop_oldest_drops_counts_and_the_upstream_sees_no_gap(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    app = write_app(tmp_path / "app")
    settings = Settings(
        outbox_max_bytes=LIMIT, outbox_overflow="drop_oldest", upstream_url=upstream.url
    )
    async with Gateway.open(app, tmp_path / "d", settings) as gw:
        await gw.run_mutation("readings:add", {"n": -1})
        uplink = _uplink(gw, upstream.url)
        upstream.down = False
        await uplink.start()
        try:
            await eventually(lambda: uplink.acked == 1)  # a mark upstream, then an outage
            upstream.down = True
            for start in range(0, 2000, 100):
                await gw.run_mutation("readings:add_many", {"start": start, "count": 100})
            entries, scanned, total, dropped = await _outbox(gw)
            assert total == scanned <= LIMIT and dropped > 0 and entries + dropped == 2000
            upstream.down = False
            await eventually(lambda: uplink.acked == 2001)
            seqs = [s for _, s in upstream.seqs()]
            assert seqs == list(range(1, 2002))  # dropped entries came as skips: no gap
            skips = [c for c in upstream.applied if c["op"] == "skip"]
            assert len(skips) == dropped
            kept = [c["doc"]["n"] for c in upstream.applied if c["op"] == "insert"]
            assert kept[-1] == 1999.0 and len(kept) == 1 + 2000 - dropped
        finally:
            await uplink.close()
    _integrity(tmp_path / "d")
