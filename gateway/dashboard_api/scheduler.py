"""Scheduled jobs and cron jobs: live pages of their system tables, and cancel.

Jobs are read through ``ctx.db.system`` like app code would, so the queries are live: a
job's state change reruns them. ``_cron_job_logs`` is bounded (``MAX_LOG_DOCS``), so
``scheduler:crons`` reads it whole and keeps each job's newest runs.
"""

from __future__ import annotations

from typing import Any, Final

from gateway.runtime.cron_tables import JOBS_TABLE, LOGS_TABLE
from gateway.runtime.functions import RegisteredFunction
from gateway.runtime.scheduler import BY_STATE_TIME, SCHEDULED_TABLE
from gateway.schema import pagination_opts, v

JOBS_PATH: Final = "_system/dashboard/scheduler:jobs"
CANCEL_PATH: Final = "_system/dashboard/scheduler:cancel"
CRONS_PATH: Final = "_system/dashboard/scheduler:crons"
STATES: Final = ("pending", "inProgress", "success", "failed", "canceled")
DEFAULT_RUNS: Final = 10
MAX_RUNS: Final = 100


async def _jobs(ctx: Any, args: dict[str, Any]) -> Any:
    table = ctx.db.system.query(SCHEDULED_TABLE)
    state = args.get("state")
    if state is not None:
        table = table.with_index(BY_STATE_TIME, lambda q: q.eq("state.kind", state))
    return await table.order("desc").paginate(args["paginationOpts"])


async def _cancel(ctx: Any, args: dict[str, Any]) -> str | None:
    job = await ctx.db.system.get(SCHEDULED_TABLE, args["id"])
    if job is None:
        return None
    await ctx.scheduler.cancel(args["id"])
    kind: str = job["state"]["kind"]
    return "canceled" if kind == "pending" else kind


async def _crons(ctx: Any, args: dict[str, Any]) -> list[dict[str, Any]]:
    keep = int(min(max(args.get("runs", DEFAULT_RUNS), 0), MAX_RUNS))
    jobs = await ctx.db.system.query(JOBS_TABLE).collect()
    runs: dict[str, list[dict[str, Any]]] = {}
    async for log in ctx.db.system.query(LOGS_TABLE).order("desc"):
        mine = runs.setdefault(log.get("cronName", ""), [])
        if len(mine) < keep:
            mine.append(_run(log))
    rows = [_job(job) | {"runs": runs.get(job["name"], [])} for job in jobs]
    return sorted(rows, key=lambda row: row["name"])


def _job(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k) for k in ("name", "schedule", "udfPath", "args", "nextTs", "prevTs")}


def _run(log: dict[str, Any]) -> dict[str, Any]:
    return {k: log[k] for k in ("scheduledTime", "completedTime", "state") if k in log}


def functions() -> list[RegisteredFunction]:
    state = v.union(*(v.literal(s) for s in STATES))
    return [
        RegisteredFunction(
            "query",
            "internal",
            _jobs,
            {"state": v.optional(state), "paginationOpts": pagination_opts},
            path=JOBS_PATH,
        ),
        RegisteredFunction("mutation", "internal", _cancel, {"id": v.string()}, path=CANCEL_PATH),
        RegisteredFunction(
            "query", "internal", _crons, {"runs": v.optional(v.float64())}, path=CRONS_PATH
        ),
    ]
