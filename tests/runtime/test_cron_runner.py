"""Cron jobs end to end: an in-process Gateway runs real jobs on a clock the test drives.

No test sleeps for real: ``cron_fake_clock.FakeClock`` moves the wall and monotonic
clocks, and ``Gateway.cron_clock`` hands it to the runner.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from cron_fake_clock import FakeClock, settle

from gateway import Gateway, Settings
from gateway.runtime.cron_tables import load_states, read_logs

TICK = """
    import asyncio
    import os

    from gateway import action, internal_mutation, query

    @internal_mutation
    async def bump(ctx, args):
        await ctx.db.insert("ticks", {"tag": args["tag"]})

    @query
    async def ticks(ctx, args):
        return [d["tag"] for d in await ctx.db.query("ticks").collect()]

    @query
    async def cron_runs(ctx, args):
        return [d["cronName"] for d in await ctx.db.system.query("_cron_job_logs").collect()]

    @action
    async def slow(ctx, args):
        await ctx.run_mutation("tick:bump", {"tag": "slow"})
        while not os.path.exists(args["gate"]):  # the test opens the gate
            await asyncio.sleep(0.01)
"""


def crons_py(*lines: str) -> str:
    body = "\n".join(lines)
    return f"from gateway import cron_jobs\nfrom .tick import bump\n\ncrons = cron_jobs()\n{body}\n"


def at(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).replace(tzinfo=dt.UTC).timestamp() * 1000


@asynccontextmanager
async def clocked(
    app: Path, data: Path, clock: FakeClock, **options: Any
) -> AsyncIterator[Gateway]:
    class ClockedGateway(Gateway):
        cron_clock = clock

    async with ClockedGateway.open(app, data, Settings(), **options) as gw:
        await settle(gw.crons, clock)
        yield gw


async def tags(gw: Gateway) -> list[str]:
    result: list[str] = await gw.run_query("tick:ticks")
    return result


async def logs(gw: Gateway) -> list[dict[str, Any]]:
    records, _ = await gw.store.read(read_logs)
    return records


def write_crons(app: Path, *lines: str) -> None:
    (app / "convex" / "crons.py").write_text(crons_py(*lines))


async def test_jobs_run_on_schedule_and_are_recorded(
    make_app: Callable[..., Path], tmp_path: Path, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, "gateway.crons")
    app = make_app(
        tick=TICK,
        crons=crons_py(
            'crons.interval("often", {"minutes": 10}, "tick:bump", {"tag": "interval"})',
            'crons.daily("nightly", {"hour_utc": 3, "minute_utc": 0}, bump, {"tag": "daily"})',
        ),
    )
    clock = FakeClock(at("2026-12-04T00:00"))
    async with clocked(app, tmp_path / "data", clock) as gw:
        assert await tags(gw) == ["interval"]  # an interval job runs when registered
        await clock.advance(3 * 3600 + 60, gw.crons)
        ticks = await tags(gw)
        assert ticks.count("interval") == 1 + 18 and ticks.count("daily") == 1
        records = await logs(gw)
        nightly = [r for r in records if r["cronName"] == "nightly"]
        assert len(nightly) == 1
        assert nightly[0]["name"] == "tick:bump"
        assert nightly[0]["args"] == [{"tag": "daily"}]
        assert nightly[0]["scheduledTime"] == at("2026-12-05T03:00") - 86400_000
        assert nightly[0]["state"] == {"kind": "success"}
        assert all(r["state"]["kind"] == "success" for r in records)
        runs = await gw.run_query("tick:cron_runs")  # readable as a system table, too
        assert runs.count("often") == 19 and runs.count("nightly") == 1
    assert "cron job 'nightly' added" in caplog.text
    assert "cron job 'nightly': tick:bump succeeded" in caplog.text


async def test_a_forward_jump_skips_a_day_instead_of_firing_it(
    make_app: Callable[..., Path], tmp_path: Path, caplog: Any
) -> None:
    app = make_app(
        tick=TICK,
        crons=crons_py(
            'crons.cron("tenth", "*/10 * * * *", "tick:bump", {"tag": "cron"})',
            'crons.interval("half", {"minutes": 30}, "tick:bump", {"tag": "interval"})',
        ),
    )
    clock = FakeClock(at("2026-12-04T00:05"))
    clock.synced = False
    async with clocked(app, tmp_path / "data", clock) as gw:
        await clock.advance(10 * 60, gw.crons)  # 00:10 runs
        assert (await tags(gw)).count("cron") == 1
        clock.jump_wall(24 * 3600)  # NTP arrives: the box was a day behind
        clock.synced = True
        await clock.advance(60, gw.crons)
        assert (await tags(gw)).count("cron") == 1  # no burst of 144 runs
        skipped = [r for r in await logs(gw) if r["state"]["kind"] == "canceled"]
        assert [r["cronName"] for r in skipped] == ["tenth"]
        assert skipped[0]["state"]["numSkipped"] == 144
        await clock.advance(10 * 60, gw.crons)  # and it goes on at its next slot
        assert (await tags(gw)).count("cron") == 2
        # the interval job ignores the wall clock: its second run is 30 min after its first
        assert (await tags(gw)).count("interval") == 1
        await clock.advance(10 * 60, gw.crons)
        assert (await tags(gw)).count("interval") == 2
    assert "the wall clock is not known to be NTP-synchronised: calendar" in caplog.text
    assert (
        "the wall clock jumped forward by 86400.0 s (now 2026-12-05T00:15:30+00:00)" in caplog.text
    )


async def test_a_backward_jump_neither_repeats_nor_stalls(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    app = make_app(
        tick=TICK, crons=crons_py('crons.cron("tenth", "*/10 * * * *", bump, {"tag": "c"})')
    )
    clock = FakeClock(at("2026-12-04T00:05"))
    async with clocked(app, tmp_path / "data", clock) as gw:
        await clock.advance(5 * 60, gw.crons)  # 00:10 runs
        assert await tags(gw) == ["c"]
        clock.jump_wall(-8 * 60)  # a small step back: 00:02
        await clock.advance(8 * 60 + 30, gw.crons)  # wall 00:10:30 again: not repeated
        assert await tags(gw) == ["c"]
        await clock.advance(10 * 60, gw.crons)  # 00:20 runs
        assert await tags(gw) == ["c", "c"]
        clock.jump_wall(-3 * 86400)  # the clock was days ahead: re-planned, no stall
        await clock.advance(10 * 60 + 30, gw.crons)
        assert await tags(gw) == ["c", "c", "c"]


async def test_runs_missed_while_the_gateway_was_off_are_skipped(
    make_app: Callable[..., Path], tmp_path: Path, caplog: Any
) -> None:
    app = make_app(
        tick=TICK, crons=crons_py('crons.hourly("top", {"minute_utc": 0}, bump, {"tag": "h"})')
    )
    clock = FakeClock(at("2026-12-04T00:30"))
    async with clocked(app, tmp_path / "data", clock) as gw:
        await clock.advance(31 * 60, gw.crons)  # 01:00 runs
        assert await tags(gw) == ["h"]
    later = FakeClock(at("2026-12-04T06:30"))  # off for five and a half hours
    async with clocked(app, tmp_path / "data", later) as gw:
        assert await tags(gw) == ["h"]  # nothing caught up
        skipped = [r for r in await logs(gw) if r["state"]["kind"] == "canceled"]
        assert len(skipped) == 1
        assert skipped[0]["state"]["numSkipped"] == 5  # 02:00 ... 06:00
        assert skipped[0]["scheduledTime"] == at("2026-12-04T02:00")
        await later.advance(31 * 60, gw.crons)  # 07:00 runs
        assert await tags(gw) == ["h", "h"]
    assert "cron job 'top': skipping 5 run(s)" in caplog.text


async def test_one_run_at_a_time(make_app: Callable[..., Path], tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    app = make_app(
        tick=TICK,
        crons=crons_py(
            f'crons.interval("slow", {{"seconds": 30}}, "tick:slow", {{"gate": {str(gate)!r}}})'
        ),
    )
    clock = FakeClock()

    class ClockedGateway(Gateway):
        cron_clock = clock

    async with ClockedGateway.open(app, tmp_path / "data", Settings()) as gw:
        await settle(gw.crons, clock, wait_runs=False)
        assert gw.crons.running == 1
        await clock.advance(65, gw.crons, wait_runs=False)  # due twice while still going
        assert gw.crons.running == 1
        gate.write_text("open")
        await settle(gw.crons, clock)
        await clock.advance(30, gw.crons)  # runs again once the first is done
        assert await tags(gw) == ["slow", "slow"]
        states = [(r["state"]["kind"], r["state"].get("reason")) for r in await logs(gw)]
        still = ("canceled", "the previous run was still going")
        assert states == [still, still, ("success", None), ("success", None)]


async def test_reload_adds_changes_and_removes_jobs(
    make_app: Callable[..., Path], tmp_path: Path, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, "gateway.crons")
    keep = 'crons.interval("keep", {"minutes": 10}, bump, {"tag": "keep"})'
    app = make_app(
        tick=TICK,
        crons=crons_py(
            keep,
            'crons.daily("change", {"hour_utc": 5}, bump, {"tag": "change"})',
            'crons.interval("drop", {"hours": 1}, bump, {"tag": "drop"})',
        ),
    )
    clock = FakeClock()
    async with clocked(app, tmp_path / "data", clock) as gw:
        assert sorted(await tags(gw)) == ["drop", "keep"]
        await clock.advance(5 * 60, gw.crons)
        write_crons(
            app,
            keep,
            'crons.hourly("change", {"minute_utc": 7}, bump, {"tag": "change"})',
            'crons.interval("new", {"hours": 2}, bump, {"tag": "new"})',
        )
        await gw.reload_app()
        await settle(gw.crons, clock)
        assert sorted(await tags(gw)) == ["drop", "keep", "new"]  # keep not rerun
        await clock.advance(5 * 60, gw.crons)  # 00:07 change, 00:10 keep (its timing kept)
        await clock.advance(60 * 60, gw.crons)  # to 01:10; drop never runs again
        ticks = await tags(gw)
        assert ticks.count("keep") == 8 and ticks.count("change") == 2  # 00:07, 01:07
        assert ticks.count("drop") == 1
        states, _ = await gw.store.read(load_states)
        assert sorted(states) == ["change", "keep", "new"]
        assert states["change"]["schedule"] == "cron '7 * * * *' UTC"
    text = caplog.text
    assert "cron job 'change' changed" in text
    assert "cron job 'new' added" in text
    assert "cron job 'drop' removed" in text
    assert "cron job 'keep' changed" not in text


async def test_a_job_that_fails_is_recorded_and_keeps_its_schedule(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    fail = """
        from gateway import internal_mutation

        @internal_mutation
        async def boom(ctx, args):
            await ctx.db.insert("ticks", {"tag": "partial"})
            raise ValueError("boom")
    """
    app = make_app(
        tick=TICK,
        fail=textwrap.dedent(fail),
        crons=crons_py('crons.interval("boom", {"seconds": 60}, "fail:boom")'),
    )
    clock = FakeClock()
    async with clocked(app, tmp_path / "data", clock) as gw:
        await clock.advance(60, gw.crons)
        assert await tags(gw) == []  # its writes rolled back
        records = await logs(gw)
        assert [r["state"]["kind"] for r in records] == ["failed", "failed"]
        assert "boom" in records[0]["state"]["error"]


async def test_occurrences_that_come_due_together_are_one_skip(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    app = make_app(
        tick=TICK, crons=crons_py('crons.interval("fast", {"seconds": 1}, bump, {"tag": "f"})')
    )
    clock = FakeClock()
    async with clocked(app, tmp_path / "data", clock) as gw:
        await clock.stall(10, gw.crons)  # the box was too busy to wake for 10 s
        assert await tags(gw) == ["f", "f"]  # the first late occurrence runs, once
        skipped = [r["state"] for r in await logs(gw) if r["state"]["kind"] == "canceled"]
        assert skipped == [
            {"kind": "canceled", "numSkipped": 9.0, "reason": "missed: they came due together"}
        ]
        await clock.advance(1, gw.crons)
        assert await tags(gw) == ["f", "f", "f"]


async def test_the_system_clock_runs_jobs_too(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    app = make_app(
        tick=TICK, crons=crons_py('crons.interval("now", {"hours": 1}, bump, {"tag": "n"})')
    )
    async with Gateway.open(app, tmp_path / "data", Settings()) as gw:
        deadline = time.monotonic() + 10
        while await tags(gw) != ["n"]:  # an interval job runs when registered
            assert time.monotonic() < deadline, "the job did not run on the real clock"
            await asyncio.sleep(0.01)
        states, _ = await gw.store.read(load_states)
        assert states["now"]["nextTs"] > time.time() * 1000 + 3500_000


async def test_a_full_disk_does_not_stop_the_jobs(
    make_app: Callable[..., Path], tmp_path: Path, caplog: Any
) -> None:
    full = threading.Event()

    def flaky_commit(conn: sqlite3.Connection) -> None:
        if full.is_set():
            raise sqlite3.OperationalError("database or disk is full")
        conn.execute("COMMIT")

    app = make_app(
        tick=TICK, crons=crons_py('crons.cron("tenth", "*/10 * * * *", bump, {"tag": "c"})')
    )
    clock = FakeClock(at("2026-12-04T00:05"))
    async with clocked(app, tmp_path / "data", clock, commit_fn=flaky_commit) as gw:
        full.set()
        await clock.advance(10 * 60, gw.crons)  # 00:10: neither the run nor the state commits
        full.clear()
        assert await tags(gw) == []
        await clock.advance(10 * 60, gw.crons)  # 00:20 runs: the runner carried on
        assert await tags(gw) == ["c"]
    assert "cron job 'tenth': the run due 2026-12-04T00:10:00+00:00 failed to run" in caplog.text
    assert "cron jobs: recording their state failed" in caplog.text
