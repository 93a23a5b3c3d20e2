"""The outbox in segments (``gateway/store/outbox_log.py``) against a plain model.

The model is one list of entries: what the edge wrote, minus what the quota dropped.
Whatever the segments look like on disk, "the entries after seq N", the newest seq, the
backlog and the quota's running count must be the model's, seqs are never handed out
twice, and acknowledged segments really go (the store does not grow with its history).
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from edge_upstream_kit import write_app

from gateway import Gateway, Settings
from gateway.replication.edge_status import read_backlog
from gateway.replication.outbox import Outbox
from gateway.store import Transaction, outbox_log
from gateway.store.layout import DB_FILENAME
from gateway.store.outbox_log import ROW_BYTES_SQL
from gateway.store.quota import BYTES_KEY

SEGMENT = 8  # entries a segment spans before it is sealed, for these tests
# The quota applies with an upstream; the gateway alone starts no uplink to reach it.
NOWHERE = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_log, "SEGMENT_ROWS", SEGMENT)


def tables(data: Path) -> list[str]:
    conn = sqlite3.connect(data / DB_FILENAME)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return outbox_log.segments(conn)
    finally:
        conn.close()


async def add(gw: Gateway, start: int, count: int) -> None:
    await gw.run_mutation("readings:add_many", {"start": start, "count": count})


async def entries_after(gw: Gateway, after: int, limit: int = 10_000) -> list[tuple[int, float]]:
    def read(tx: Transaction) -> list[tuple[int, float]]:
        rows = outbox_log.rows_after(tx.conn, after, limit)
        return [(row[0], _n(row[5])) for row in rows]

    value, _ = await gw.store.read(read)
    return value


def _n(after: str) -> float:
    import json

    return float(json.loads(after)["n"])


async def test_a_full_head_is_sealed_and_the_sequence_goes_on(tmp_path: Path) -> None:
    app, data = write_app(tmp_path / "app"), tmp_path / "d"
    async with Gateway.open(app, data) as gw:
        for start in range(0, 30, 5):  # six batches of five: seals at 10, 20, 30
            await add(gw, start, 5)
        rows = await entries_after(gw, 0)
    assert [seq for seq, _ in rows] == list(range(1, 31))
    assert [n for _, n in rows] == [float(n) for n in range(30)]
    names = tables(data)
    assert names[-1] == "change_log" and len(names) == 4  # three sealed, then the head
    assert names[:-1] == sorted(names[:-1])
    # The head was sealed after the batch that filled it: the new head starts empty.
    conn = sqlite3.connect(data / DB_FILENAME)
    firsts = [conn.execute(f"SELECT min(seq) FROM {t}").fetchone()[0] for t in names]
    conn.close()
    assert firsts == [1, 11, 21, None]
    async with Gateway.open(app, data) as gw:  # reopened: the sequence continues
        await add(gw, 30, 1)
        assert [seq for seq, _ in await entries_after(gw, 30)] == [31]


async def test_acknowledging_drops_whole_segments_and_empties_the_head(tmp_path: Path) -> None:
    app, data = write_app(tmp_path / "app"), tmp_path / "d"
    async with Gateway.open(app, data) as gw:
        for start in range(0, 20, 4):
            await add(gw, start, 4)  # sealed at 8 and 16: segments 1-8, 9-16, head 17-20
        outbox = Outbox(gw.store)
        assert len(tables(data)) == 3
        await outbox.acknowledge(12)  # inside the second segment: only the first goes
        assert tables(data) == [f"change_log_{9:020d}", "change_log"]
        assert [s for s, _ in await entries_after(gw, 12)] == list(range(13, 21))
        await outbox.acknowledge(20)  # everything: every segment gone, the head empty
        assert tables(data) == ["change_log"]
        assert await entries_after(gw, 0) == []
        assert await outbox.cursor() == 20
        await add(gw, 20, 1)
        assert [s for s, _ in await entries_after(gw, 20)] == [21]  # no seq twice


async def test_an_older_acknowledgement_never_moves_the_cursor_back(tmp_path: Path) -> None:
    app, data = write_app(tmp_path / "app"), tmp_path / "d"
    async with Gateway.open(app, data) as gw:
        await add(gw, 0, 20)
        outbox = Outbox(gw.store)
        await outbox.acknowledge(15)
        await outbox.acknowledge(5)
        assert await outbox.cursor() == 15
        assert [s for s, _ in await entries_after(gw, 15)] == list(range(16, 21))


class Model:
    """The outbox as one list: (seq, n, counted bytes) of entries not dropped."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, float, int]] = []
        self.next_seq = 1
        self.acked = 0

    def add(self, start: int, count: int, sizes: dict[int, int]) -> None:
        for n in range(start, start + count):
            self.entries.append((self.next_seq, float(n), sizes[n]))
            self.next_seq += 1

    def after(self, seq: int) -> list[tuple[int, float]]:
        return [(s, n) for s, n, _ in self.entries if s > seq]

    def unacked_bytes(self) -> int:
        return sum(size for s, _, size in self.entries if s > self.acked)


async def _sizes(gw: Gateway, start: int, count: int) -> dict[int, int]:
    """Counted bytes of the entries for ``n`` in start.. (as the store counts them)."""

    def read(tx: Transaction) -> dict[int, int]:
        union = outbox_log.union_after(
            f"{ROW_BYTES_SQL} AS size, json_extract(after, '$.n') AS n",
            outbox_log.segments(tx.conn),
        )
        rows = tx.conn.execute(f"SELECT n, size FROM ({union})", (0,)).fetchall()
        return {int(n): int(size) for n, size in rows if start <= n < start + count}

    value, _ = await gw.store.read(read)
    return value


@pytest.mark.parametrize("seed", range(8))
async def test_segments_agree_with_one_list_under_random_writes_acks_and_drops(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    app, data = write_app(tmp_path / "app"), tmp_path / "d"
    limit = 3_000 if seed % 2 else 0  # drop_oldest with room for ~16 entries, or no quota
    settings = Settings(upstream_url=NOWHERE, outbox_max_bytes=limit, outbox_overflow="drop_oldest")
    model, n = Model(), 0
    async with Gateway.open(app, data, settings) as gw:
        outbox = Outbox(gw.store)
        for _ in range(60):
            action = rng.random()
            if action < 0.6:
                count = rng.randint(1, 12)
                await add(gw, n, count)
                model.add(n, count, await _sizes(gw, n, count))
                n += count
                if limit:  # drop_oldest: what the store kept of the unacknowledged
                    kept = {s for s, _ in await entries_after(gw, model.acked)}
                    model.entries = [
                        e for e in model.entries if e[0] <= model.acked or e[0] in kept
                    ]
            elif model.entries:
                target = rng.randint(model.acked, model.next_seq - 1)
                await outbox.acknowledge(target)
                model.acked = max(model.acked, target)
            await _check(gw, model, rng)
    tables(data)  # integrity_check ok


async def _check(gw: Gateway, model: Model, rng: random.Random) -> None:
    after = rng.randint(model.acked, model.next_seq)
    assert await entries_after(gw, after) == model.after(after)
    limit = rng.randint(1, 20)
    assert await entries_after(gw, after, limit) == model.after(after)[:limit]

    def read(tx: Transaction) -> tuple[dict[str, Any], int, int]:
        meta = dict(tx.conn.execute("SELECT key, value FROM meta").fetchall())
        return (
            read_backlog(tx.conn, 0.0),
            outbox_log.newest_seq(tx.conn),
            int(meta.get(BYTES_KEY, 0)),
        )

    (backlog, newest, counted), _ = await gw.store.read(read)
    unacked = [e for e in model.entries if e[0] > model.acked]
    assert backlog["entries"] == len(unacked)
    assert backlog["bytes"] == model.unacked_bytes() == counted
    present = [s for s, _, _ in model.entries]
    assert newest == (max(present) if present else 0) or newest <= model.acked


async def test_drop_oldest_drops_unacknowledged_entries_only(tmp_path: Path) -> None:
    app, data = write_app(tmp_path / "app"), tmp_path / "d"
    settings = Settings(upstream_url=NOWHERE, outbox_max_bytes=3_000, outbox_overflow="drop_oldest")
    async with Gateway.open(app, data, settings) as gw:
        await add(gw, 0, 6)
        await Outbox(gw.store).acknowledge(5)  # entry 5 stays on disk, acknowledged
        for start in range(6, 30, 3):
            await add(gw, start, 3)
        rows = await entries_after(gw, 5)

        def counted(tx: Transaction) -> tuple[int, int]:
            union = outbox_log.union_after(f"{ROW_BYTES_SQL} AS size", outbox_log.segments(tx.conn))
            (scan,) = tx.conn.execute(f"SELECT sum(size) FROM ({union})", (5,)).fetchone()
            meta = dict(tx.conn.execute("SELECT key, value FROM meta").fetchall())
            return int(scan), int(meta[BYTES_KEY])

        (scan, running), _ = await gw.store.read(counted)
    assert rows[0][0] > 6 and rows[-1][0] == 30  # the oldest unacknowledged went first
    assert [s for s, _ in rows] == list(range(rows[0][0], 31))
    assert scan == running <= 3_000
