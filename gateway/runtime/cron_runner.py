"""The cron runner: runs the app's cron jobs on their schedules. Owned by the Gateway.

One loop task plans every job (``gateway.runtime.cron_plan`` holds the clock rule),
naps on the injected clock's monotonic time, and starts each due run as its own task.
At most one run of a job is going at a time: an occurrence that comes due while the
previous run is still going is skipped and logged, like one reached too late. Runs and
skips are recorded in ``_cron_job_logs`` and logged on ``gateway.crons``; a scheduled
mutation's record commits in the same transaction as its writes (exactly once), an
action's after it returns (at most once), as the scheduler does for its jobs.

A reload re-registers the jobs: an unchanged job keeps its timing, a changed or new one
is planned afresh, a removed one stops (a run already going finishes).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.lifecycle import cancel_tasks
from gateway.runtime import cron_plan
from gateway.runtime.cron_clock import CronClock, SystemClock
from gateway.runtime.cron_tables import ensure_cron_tables, insert_log, load_states, save_states
from gateway.runtime.crons import CronJob, check_crons
from gateway.store import Transaction

if TYPE_CHECKING:
    from gateway.runtime.loader import App
    from gateway.runtime.runtime import Runtime

log = logging.getLogger("gateway.crons")


@dataclass
class _Plan:
    job: CronJob
    next_ms: float
    prev_ms: float | None = None
    task: asyncio.Task[None] | None = None

    def state(self) -> dict[str, Any]:
        job = self.job
        return {
            "name": job.name,
            "schedule": job.schedule.describe(),
            "udfPath": job.path,
            "args": [job.args],
            "nextTs": self.next_ms,
            "prevTs": self.prev_ms,
        }


class CronRunner:
    """Runs due cron jobs; ``clock`` is the seam tests drive (``SystemClock`` otherwise)."""

    def __init__(self, runtime: Runtime, *, clock: CronClock | None = None) -> None:
        self._runtime = runtime
        self._store = runtime.store
        self._clock: CronClock = clock or SystemClock()
        self._plans: dict[str, _Plan] = {}
        self._wake = asyncio.Event()
        self.idle = asyncio.Event()  # set while napping with nothing left to do now
        self._loop_task: asyncio.Task[None] | None = None
        self._last_seen: tuple[float, float] | None = None  # (wall ms, monotonic s)
        self._pending_logs: list[dict[str, Any]] = []
        self._runs: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        """How many runs are going now."""
        return len(self._runs)

    async def start(self, app: App) -> None:
        """Create the tables, register the app's jobs (resuming stored timing), start."""
        await self._store.write(ensure_cron_tables)
        stored, _ = await self._store.read(load_states)
        self._register(app, stored)
        await self._save_states()
        if self._plans and not self._clock.synchronised():
            log.warning(
                "the wall clock is not known to be NTP-synchronised: calendar cron jobs "
                "follow it as it is, and are re-planned when it jumps (docs/crons.md)"
            )
        self._loop_task = asyncio.create_task(self._loop(), name="crons")

    async def reload(self, app: App) -> None:
        """Re-register the jobs of a reloaded app (a ``Gateway.on_app_reloaded`` listener)."""
        stored = {name: plan.state() for name, plan in self._plans.items()}
        self._register(app, stored)
        await self._save_states()
        self.idle.clear()  # not idle until the loop has looked at the new plans
        self._wake.set()

    async def close(self) -> None:
        """Stop the loop and cancel runs still going. Idempotent."""
        await cancel_tasks([self._loop_task, *self._runs])
        self._loop_task = None

    # --- registration ----------------------------------------------------------------

    def _register(self, app: App, stored: dict[str, dict[str, Any]]) -> None:
        jobs = {job.name: job for job in check_crons(app.crons, app)}
        now = self._clock.wall_ms()
        for name in sorted((set(stored) | set(self._plans)) - set(jobs)):
            self._plans.pop(name, None)  # a run already going finishes
            log.info("cron job %r removed", name)
        for job in jobs.values():
            self._plans[job.name] = self._plan_for(job, stored.get(job.name), now)

    def _plan_for(self, job: CronJob, stored: dict[str, Any] | None, now: float) -> _Plan:
        old = self._plans.get(job.name)
        if stored is not None and _same(job, stored):
            if old is not None:
                old.job = job
                return old
            next_ms = cron_plan.resume(job.schedule, stored["nextTs"], stored["prevTs"], now)
            return _Plan(job, next_ms, stored["prevTs"])
        verb = "added" if stored is None else "changed"
        next_ms = cron_plan.fresh_next(job.schedule, now)
        log.info(
            "cron job %r %s: %s runs %s, next at %s",
            job.name,
            verb,
            job.path,
            job.schedule.describe(),
            _iso(next_ms),
        )
        plan = _Plan(job, next_ms)
        if old is not None:
            plan.task = old.task  # one run at a time holds across a change too
        return plan

    async def _save_states(self) -> None:
        states = {name: plan.state() for name, plan in self._plans.items()}
        logs, self._pending_logs = self._pending_logs, []

        def work(tx: Transaction) -> None:
            save_states(tx, states)
            for body in logs:
                insert_log(tx, body)

        await self._store.write(work)

    # --- the loop --------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                if self._dispatch_due(self._observe_clock()):
                    await self._save_states()
            except Exception:  # noqa: BLE001 - a full disk must not stop every job for good
                log.exception("cron jobs: recording their state failed; trying again later")
            nap = self._nap_s(self._clock.wall_ms())
            self.idle.set()
            await self._nap(nap)
            self.idle.clear()

    def _observe_clock(self) -> float:
        wall, mono = self._clock.wall_ms(), self._clock.monotonic_s()
        if self._last_seen is not None:
            last_wall, last_mono = self._last_seen
            drift = (wall - last_wall) - (mono - last_mono) * 1000
            if abs(drift) > cron_plan.JUMP_TOLERANCE_MS:
                self._on_jump(drift, wall)
        self._last_seen = (wall, mono)
        return wall

    def _on_jump(self, drift_ms: float, now: float) -> None:
        direction = "forward" if drift_ms > 0 else "back"
        synced = "" if self._clock.synchronised() else ", not known to be NTP-synchronised"
        log.warning(
            "the wall clock jumped %s by %.1f s (now %s%s); cron jobs re-planned by the clock rule",
            direction,
            abs(drift_ms) / 1000,
            _iso(now),
            synced,
        )
        for plan in self._plans.values():
            plan.next_ms = cron_plan.after_jump(plan.job.schedule, plan.next_ms, drift_ms, now)

    def _dispatch_due(self, now: float) -> bool:
        changed = False
        for plan in sorted(self._plans.values(), key=lambda p: p.next_ms):
            while plan.next_ms <= now:
                changed = True
                self._handle_due(plan, now)
        return changed

    def _handle_due(self, plan: _Plan, now: float) -> None:
        job, occ = plan.job, plan.next_ms
        if occ < now - cron_plan.LATE_TOLERANCE_MS:
            plan.next_ms, count = cron_plan.skip_missed(job.schedule, occ, now)
            more = "at least " if count >= cron_plan.MAX_COUNTED_SKIPS else ""
            log.warning(
                "cron job %r: skipping %s%d run(s) from %s on: they are in the past "
                "(the gateway was off or busy, or the clock jumped); next at %s",
                job.name,
                more,
                count,
                _iso(occ),
                _iso(plan.next_ms),
            )
            self._skipped(job, occ, count, "missed: the scheduled time had passed")
            return
        if plan.task is not None and not plan.task.done():
            log.warning(
                "cron job %r: skipping the run at %s: the previous run is still going",
                job.name,
                _iso(occ),
            )
            self._skipped(job, occ, 1, "the previous run was still going")
        else:
            plan.task = asyncio.create_task(self._run(job, occ), name=f"cron {job.name}")
            self._runs.add(plan.task)
            plan.task.add_done_callback(self._runs.discard)
        plan.prev_ms = occ
        plan.next_ms = cron_plan.next_occurrence(job.schedule, occ)
        if plan.next_ms <= now:
            # Due again already (a short interval and a late wake): one skip for them all,
            # not a burst of "still going" skips.
            first = plan.next_ms
            plan.next_ms, count = cron_plan.skip_before(
                job.schedule, first, math.nextafter(now, math.inf)
            )
            log.warning(
                "cron job %r: skipping %d run(s) from %s on: they came due together",
                job.name,
                count,
                _iso(first),
            )
            self._skipped(job, first, count, "missed: they came due together")

    def _skipped(self, job: CronJob, occ: float, count: int, reason: str) -> None:
        state = {"kind": "canceled", "numSkipped": float(count), "reason": reason}
        self._pending_logs.append(_log_body(job, occ, state))

    def _nap_s(self, now: float) -> float:
        if not self._plans:
            return cron_plan.MAX_NAP_S
        soonest = min(plan.next_ms for plan in self._plans.values())
        return max(0.0, min(cron_plan.MAX_NAP_S, (soonest - now) / 1000))

    async def _nap(self, seconds: float) -> None:
        """Sleep ``seconds`` on the clock, or less if a reload wakes the loop."""
        sleeper = asyncio.create_task(self._clock.sleep(seconds), name="crons nap")
        waker = asyncio.create_task(self._wake.wait(), name="crons wake")
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # --- one run ---------------------------------------------------------------------

    async def _run(self, job: CronJob, occ: float) -> None:
        runtime = self._runtime
        log.info("cron job %r: running %s (due %s)", job.name, job.path, _iso(occ))
        try:
            fn = runtime.app.lookup(job.path)
            if fn is not None and fn.kind == "mutation":

                def work(tx: Transaction) -> dict[str, Any]:
                    state = runtime.execute_scheduled(job.path, job.args, tx)
                    insert_log(tx, _log_body(job, occ, state))
                    return state

                state, _ = await self._store.write(work)
            else:
                result = await runtime.run("action", job.path, job.args, admin=True)
                state = (
                    {"kind": "success"}
                    if result.ok
                    else {"kind": "failed", "error": result.error_message}
                )
                await self._store.write(lambda tx: insert_log(tx, _log_body(job, occ, state)))
        except Exception:  # noqa: BLE001 - one run's failure must not stop the job
            log.exception("cron job %r: the run due %s failed to run", job.name, _iso(occ))
            return
        if state["kind"] == "success":
            log.info("cron job %r: %s succeeded", job.name, job.path)
        else:
            log.warning("cron job %r: %s failed: %s", job.name, job.path, state.get("error"))


def _same(job: CronJob, stored: dict[str, Any]) -> bool:
    return (
        stored.get("schedule") == job.schedule.describe()
        and stored.get("udfPath") == job.path
        and stored.get("args") == [job.args]
    )


def _log_body(job: CronJob, occ: float, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "cronName": job.name,
        "name": job.path,
        "args": [job.args],
        "scheduledTime": occ,
        "state": state,
    }


def _iso(ms: float) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")
