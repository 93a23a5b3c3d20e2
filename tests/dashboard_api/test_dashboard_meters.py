"""The dashboard's in-memory figures: table counts kept from commits (also while the
first count runs), the write meter, device activity, the log ring's bounds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from gateway import Gateway, Settings
from gateway.dashboard_api.counts import TableCounts
from gateway.dashboard_api.health import WearMeter
from gateway.dashboard_api.logs import LogRing
from gateway.mqtt.activity import DeviceActivity

NOTES = """
from gateway import mutation, v

@mutation(args={"n": v.float64()})
async def many(ctx, args):
    for i in range(int(args["n"])):
        await ctx.db.insert("notes", {"i": float(i)})

@mutation(args={"n": v.float64()})
async def drop(ctx, args):
    for doc in await ctx.db.query("notes").take(int(args["n"])):
        await ctx.db.delete(doc["_id"])
"""


async def test_counts_stay_exact_with_writes_during_the_first_count(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    async with Gateway.open(make_app(notes=NOTES), tmp_path / "data", Settings()) as gw:
        await gw.run_mutation("notes:many", {"n": 3000})
        for _ in range(5):  # a fresh count each round, racing the writes below
            counts = TableCounts(gw.store)
            counted = asyncio.Event()
            counts.start(counted.set)
            writes = [gw.run_mutation("notes:many", {"n": 7}) for _ in range(20)]
            writes += [gw.run_mutation("notes:drop", {"n": 3}) for _ in range(10)]
            await asyncio.gather(*writes)
            await asyncio.wait_for(counted.wait(), 10)
            truth, _ = await gw.store.read(
                lambda tx: tx.conn.execute(
                    "SELECT count(*) FROM documents WHERE tbl = ?",
                    (tx.catalog.table("notes").number,),
                ).fetchone()[0]
            )
            assert counts.count("notes") == truth
            assert counts.count("never_made") == 0
            await counts.close()
            await counts.close()  # idempotent


def test_wear_meter_rates_over_its_window() -> None:
    now, written = [0.0], [0.0]
    meter = WearMeter(lambda: written[0], clock=lambda: now[0])
    now[0], written[0] = 30.0, 1000.0
    assert meter.read() == (1000.0, 1000.0 * 3600 / 30)  # young: the whole life
    now[0], written[0] = 90.0, 1600.0
    assert meter.read() == (1600.0, 600.0 * 3600 / 60)  # since the first sample
    for minute in range(2, 200):
        now[0], written[0] = 30.0 + 60 * minute, 1000.0 + 10 * 60 * minute
        total, per_hour = meter.read()
    assert per_hour is not None and abs(per_hour - 36_000.0) < 1e-6  # 10 B/s, last hour
    assert WearMeter(lambda: None).read() == (None, None)


def test_device_activity_counts_and_rates() -> None:
    now = [100.0]
    activity = DeviceActivity(clock=lambda: now[0])
    for _ in range(3):
        activity.record("dev-a", "sensors/dev-a/t", 12, 5.0)
    now[0] = 130.0
    activity.record("dev-a", "sensors/dev-a/h", 4, 6.0)
    row = activity.devices()["dev-a"]
    assert (row["messages"], row["perMinute"], row["lastTopic"], row["lastBytes"]) == (
        4.0,
        4.0,
        "sensors/dev-a/h",
        4.0,
    )
    now[0] = 165.0  # the first three are more than a minute old
    assert activity.devices()["dev-a"]["perMinute"] == 1.0
    now[0] = 500.0
    assert activity.devices()["dev-a"] | {"lastMessageMs": 0} == {
        "messages": 4.0,
        "lastMessageMs": 0,
        "lastTopic": "sensors/dev-a/h",
        "lastBytes": 4.0,
        "perMinute": 0.0,
    }


def test_log_ring_is_bounded_and_numbered() -> None:
    ring = LogRing(capacity=3)
    for i in range(5):
        ring.add("gateway", "INFO", "gateway.test", f"m{i}")
    ring.add_lines("notes:add", ["[WARN] careful", "no tag"])
    entries, last, oldest = ring.recent(0, 10)
    assert [(e.seq, e.level, e.message) for e in entries] == [
        (5, "INFO", "m4"),
        (6, "WARN", "careful"),
        (7, "INFO", "no tag"),
    ]
    assert (last, oldest) == (7, 5)
    ring.add("gateway", "INFO", "x", "y" * 10_000)
    assert ring.recent(7, 10)[0][0].message.endswith("(truncated)")


def test_log_ring_redacts_keys() -> None:
    ring = LogRing()
    key = "outpost-" + "ab" * 32
    ring.add("gateway", "WARN", "gateway.http", f"bad header {key}")
    ring.add_lines("notes:add", [f"[LOG] the key is {key}"])
    messages = [e.message for e in ring.recent(0, 10)[0]]
    assert messages == ["bad header [redacted]", "the key is [redacted]"]


async def test_late_counts_rerun_live_queries_twice(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    async with Gateway.open(make_app(notes=NOTES), tmp_path / "data", Settings()) as gw:
        calls: list[float] = []
        counts = TableCounts(gw.store)
        counts.start(lambda: calls.append(asyncio.get_running_loop().time()), again_after_s=0.05)
        assert await counts.wait(5.0)
        for _ in range(200):
            if len(calls) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(calls) == 2 and calls[1] - calls[0] >= 0.05
        await counts.close()
