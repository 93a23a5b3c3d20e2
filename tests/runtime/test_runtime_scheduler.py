"""The scheduler: transactional from mutations, exactly-once mutations, at-most-once actions."""

from __future__ import annotations

import asyncio
import time

from gateway import Gateway

FNS = """
    from gateway import mutation, action, internal_mutation, query, ConvexError, v

    @mutation
    async def plan(ctx, args):
        job = await ctx.scheduler.run_after(args["delay"], "jobs:record", {"tag": args["tag"]})
        if args.get("fail"):
            raise ConvexError("changed my mind")
        return job

    @mutation
    async def plan_and_cancel(ctx, args):
        job = await ctx.scheduler.run_after(10_000, "jobs:record", {"tag": "never"})
        await ctx.scheduler.cancel(job)
        return job

    @internal_mutation
    async def record(ctx, args):
        if args["tag"] == "bad":
            await ctx.db.insert("log", {"tag": "partial"})
            raise ValueError("bad job")
        await ctx.db.insert("log", {"tag": args["tag"]})

    @action
    async def from_action(ctx, args):
        return await ctx.scheduler.run_after(0, "jobs:act", {"tag": args["tag"]})

    @internal_mutation
    async def act_write(ctx, args):
        await ctx.db.insert("log", {"tag": args["tag"]})

    @action
    async def act(ctx, args):
        await ctx.run_mutation("jobs:act_write", {"tag": "action " + args["tag"]})

    @query
    async def tags(ctx, args):
        return sorted(d["tag"] for d in await ctx.db.query("log").collect())

    @query
    async def job(ctx, args):
        return await ctx.db.system.get(args["id"])

    @query
    async def jobs(ctx, args):
        return await ctx.db.system.query("_scheduled_functions").collect()

    @query
    async def not_schedulable(ctx, args):
        return 1

    @mutation
    async def schedule_query(ctx, args):
        await ctx.scheduler.run_after(0, "jobs:not_schedulable", {})
"""


async def _until(check, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_scheduled_mutation_runs_once_and_records_success(make_app, tmp_path) -> None:
    async with Gateway.open(make_app(jobs=FNS), tmp_path / "d") as gw:
        job_id = await gw.run_mutation("jobs:plan", {"delay": 50, "tag": "a"})
        pending = await gw.run_query("jobs:job", {"id": job_id})
        assert pending["state"] == {"kind": "pending"} and pending["name"] == "jobs:record"
        done = await _until(lambda: _finished(gw, job_id))
        assert (
            done["state"] == {"kind": "success"} and done["completedTime"] >= done["scheduledTime"]
        )
        assert await gw.run_query("jobs:tags") == ["a"]


async def _finished(gw, job_id):
    job = await gw.run_query("jobs:job", {"id": job_id})
    return job if job["state"]["kind"] not in ("pending", "inProgress") else None


async def test_nothing_is_scheduled_when_the_mutation_fails(make_app, tmp_path) -> None:
    async with Gateway.open(make_app(jobs=FNS), tmp_path / "d") as gw:
        result = await gw.call("mutation", "jobs:plan", {"delay": 0, "tag": "x", "fail": True})
        assert not result.ok
        assert await gw.run_query("jobs:jobs") == []


async def test_a_failing_job_keeps_none_of_its_writes(make_app, tmp_path) -> None:
    async with Gateway.open(make_app(jobs=FNS), tmp_path / "d") as gw:
        job_id = await gw.run_mutation("jobs:plan", {"delay": 0, "tag": "bad"})
        done = await _until(lambda: _finished(gw, job_id))
        assert done["state"]["kind"] == "failed" and "bad job" in done["state"]["error"]
        assert await gw.run_query("jobs:tags") == []


async def test_cancel_and_actions(make_app, tmp_path) -> None:
    async with Gateway.open(make_app(jobs=FNS), tmp_path / "d") as gw:
        cancelled = await gw.run_mutation("jobs:plan_and_cancel")
        assert (await gw.run_query("jobs:job", {"id": cancelled}))["state"] == {"kind": "canceled"}
        job_id = await gw.run_action("jobs:from_action", {"tag": "b"})
        done = await _until(lambda: _finished(gw, job_id))
        assert done["state"] == {"kind": "success"}
        assert await gw.run_query("jobs:tags") == ["action b"]
        bad = await gw.call("mutation", "jobs:schedule_query")
        assert "only mutations and actions can be scheduled" in bad.error_message


async def test_pending_jobs_survive_a_restart(make_app, tmp_path) -> None:
    app = make_app(jobs=FNS)
    async with Gateway.open(app, tmp_path / "d") as gw:
        job_id = await gw.run_mutation("jobs:plan", {"delay": 300, "tag": "later"})
    async with Gateway.open(app, tmp_path / "d") as gw:
        done = await _until(lambda: _finished(gw, job_id))
        assert done["state"] == {"kind": "success"}
        assert await gw.run_query("jobs:tags") == ["later"]
