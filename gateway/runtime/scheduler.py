"""The scheduler: ``ctx.scheduler`` and the runner that executes due jobs.

Jobs live in the ``_scheduled_functions`` system table (convex-semantics 7). From a
mutation, scheduling is part of its transaction; from an action it commits at once.
Scheduled mutations run exactly once: the job's state change and the mutation's writes
commit together. Scheduled actions run at most once: the job is marked ``inProgress``
in a committed transaction first, and one found in that state after a restart is
marked failed, never re-run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.errors import FunctionError
from gateway.lifecycle import cancel_tasks
from gateway.runtime.index_range import IndexRangeBuilder, resolve_range
from gateway.store import Committed, Transaction
from gateway.values import to_convex

if TYPE_CHECKING:
    from gateway.runtime.database import Execution
    from gateway.runtime.runtime import Runtime

log = logging.getLogger("gateway.scheduler")

SCHEDULED_TABLE = "_scheduled_functions"
BY_STATE_TIME = "by_state_time"
STATE_TIME_FIELDS = ("state.kind", "scheduledTime")
MAX_DELAY_MS = 5 * 365 * 86400 * 1000.0
PARALLELISM = 8
DUE_BATCH = 64
TRANSIENT = "Transient error while executing action"


def ensure_system_tables(tx: Transaction) -> None:
    """Create the scheduler's table and index if this store has none yet."""
    if tx.catalog.table(SCHEDULED_TABLE) is None:
        tx.create_table(SCHEDULED_TABLE)
        tx.create_index(SCHEDULED_TABLE, BY_STATE_TIME, STATE_TIME_FIELDS)


def _check_time(at_ms: Any, now_ms: float) -> float:
    if isinstance(at_ms, bool) or not isinstance(at_ms, int | float) or not math.isfinite(at_ms):
        raise FunctionError(f"InvalidScheduledFunctionDelay: {at_ms!r} is not a finite time in ms")
    if abs(at_ms - now_ms) > MAX_DELAY_MS:
        raise FunctionError(
            "InvalidScheduledFunctionDelay: a function may be scheduled at most 5 years "
            "into the future or the past"
        )
    return float(at_ms)


def insert_job(tx: Transaction, creation_ms: float, path: str, args: Any, at_ms: float) -> str:
    doc = {"name": path, "args": [args], "scheduledTime": at_ms, "state": {"kind": "pending"}}
    return tx.insert(SCHEDULED_TABLE, doc, creation_ms)


def cancel_job(tx: Transaction, job_id: str, now_ms: float) -> None:
    job = tx.get(job_id)
    if job is None or job.get("state", {}).get("kind") != "pending":
        return  # running or finished jobs are not touched; unknown ids are a no-op
    _set_state(tx, job, {"kind": "canceled"}, now_ms)


def _set_state(tx: Transaction, job: dict[str, Any], state: dict[str, Any], now_ms: float) -> None:
    body = {k: v for k, v in job.items() if k not in ("_id", "_creationTime")}
    body["state"] = state
    if state["kind"] in ("success", "failed", "canceled"):
        body["completedTime"] = now_ms
    tx.replace(SCHEDULED_TABLE, job, body)


class _SchedulerBase:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def _target(self, ref: Any) -> str:
        fn = self._runtime.lookup(ref, None, internal_ok=True)
        if fn.kind == "query":
            raise FunctionError(
                f"{fn.path} is a query; only mutations and actions can be scheduled"
            )
        return fn.path

    async def run_after(self, delay_ms: float, ref: Any, args: Any = None) -> str:
        """Run ``ref`` with ``args`` after ``delay_ms`` milliseconds; returns the job id."""
        if isinstance(delay_ms, int | float) and not isinstance(delay_ms, bool) and delay_ms < 0:
            raise FunctionError("InvalidScheduledFunctionDelay: the delay must not be negative")
        now = self._now_ms()
        return await self.run_at(now + _check_time(delay_ms, 0.0), ref, args)

    async def run_at(self, at_ms: float, ref: Any, args: Any = None) -> str:
        """Run ``ref`` with ``args`` at ``at_ms`` (ms since the epoch)."""
        at = _check_time(at_ms, self._now_ms())
        return await self._insert(
            self._target(ref), to_convex(args or {}, what="scheduled args"), at
        )

    def _now_ms(self) -> float:
        return time.time() * 1000

    async def _insert(self, path: str, args: Any, at_ms: float) -> str:
        raise NotImplementedError


class MutationScheduler(_SchedulerBase):
    """``ctx.scheduler`` of a mutation: jobs commit (or vanish) with the mutation."""

    def __init__(self, runtime: Runtime, ex: Execution) -> None:
        super().__init__(runtime)
        self._ex = ex

    def _now_ms(self) -> float:
        return self._ex.tx.ts / 1_000_000

    async def _insert(self, path: str, args: Any, at_ms: float) -> str:
        self._ex.limits.schedule()
        return insert_job(self._ex.tx, self._ex.creation_time(), path, args, at_ms)

    async def cancel(self, job_id: str) -> None:
        cancel_job(self._ex.tx, job_id, self._now_ms())


class ActionScheduler(_SchedulerBase):
    """``ctx.scheduler`` of an action: each call commits at once."""

    async def _insert(self, path: str, args: Any, at_ms: float) -> str:
        def work(tx: Transaction) -> str:
            return insert_job(tx, tx.ts / 1_000_000, path, args, at_ms)

        job_id, _ = await self._runtime.store.write(work)
        return job_id

    async def cancel(self, job_id: str) -> None:
        now = self._now_ms()
        await self._runtime.store.write(lambda tx: cancel_job(tx, job_id, now))


class Scheduler:
    """Runs due jobs, FIFO by time, at most ``PARALLELISM`` at once. Owned by the Gateway."""

    def __init__(self, runtime: Runtime, *, clock_ms: Callable[[], float] | None = None) -> None:
        self._runtime = runtime
        self._store = runtime.store
        self._clock_ms = clock_ms or (lambda: time.time() * 1000)
        self._wake = asyncio.Event()
        self.idle = asyncio.Event()  # set while waiting for the next due job
        self._running: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(PARALLELISM)
        self._loop_task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.completed = 0

    async def start(self) -> None:
        await self._store.write(self._recover)
        self._unsubscribe = self._store.write_log.subscribe(self._on_commit)
        self._loop_task = asyncio.create_task(self._loop(), name="scheduler")

    async def close(self) -> None:
        """Stop the loop and cancel running actions (they are marked failed on restart)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await cancel_tasks([self._loop_task, *self._running])
        self._loop_task = None

    def _on_commit(self, commits: list[Committed]) -> None:
        if any(SCHEDULED_TABLE in commit.tables for commit in commits):
            self._wake.set()

    def _recover(self, tx: Transaction) -> int:
        stuck = [doc for _k, _s, doc in self._scan(tx, "inProgress", None)]
        now = self._clock_ms()
        for job in stuck:
            _set_state(tx, job, {"kind": "failed", "error": TRANSIENT}, now)
        return len(stuck)

    def _scan(self, tx: Transaction, kind: str, up_to_ms: float | None) -> Any:
        info = tx.catalog.table(SCHEDULED_TABLE)
        if info is None:
            return iter(())
        index = info.indexes[BY_STATE_TIME]
        builder = IndexRangeBuilder().eq("state.kind", kind)
        if up_to_ms is not None:
            builder = builder.lte("scheduledTime", up_to_ms)
        rng = resolve_range(
            builder, table=SCHEDULED_TABLE, index_name=BY_STATE_TIME, index_fields=index.fields
        )
        return tx.scan(index, rng.start, rng.end)

    def _due(self, tx: Transaction, now_ms: float) -> tuple[list[dict[str, Any]], float | None]:
        due: list[dict[str, Any]] = []
        for _key, _size, doc in self._scan(tx, "pending", None):
            if doc["scheduledTime"] > now_ms:
                return due, doc["scheduledTime"]
            due.append(doc)
            if len(due) >= DUE_BATCH:
                return due, now_ms
        return due, None

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            now = self._clock_ms()
            due, next_ms = (await self._store.read(functools.partial(self._due, now_ms=now)))[0]
            for job in due:
                await self._slots.acquire()
                task = asyncio.create_task(self._run(job), name=f"job {job['_id']}")
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            if due and next_ms == now:
                continue
            timeout = None if next_ms is None else max(0.0, (next_ms - self._clock_ms()) / 1000)
            self.idle.set()
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
            # that lands as the event is set, and stop would wait on this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self.idle.clear()

    async def _run(self, job: dict[str, Any]) -> None:
        try:
            fn = self._runtime.app.lookup(job["name"])
            if fn is None:
                await self._finish(
                    job["_id"],
                    {"kind": "failed", "error": f"Could not find function for '{job['name']}'"},
                )
            elif fn.kind == "mutation":
                await self._run_mutation(job)
            else:
                await self._run_action(job)
        except Exception:  # noqa: BLE001 - logged; the job keeps its state for a look
            log.exception("scheduled job %s failed to run", job["_id"])
        finally:
            self._slots.release()
            self.completed += 1

    async def _run_mutation(self, job: dict[str, Any]) -> None:
        runtime, job_id = self._runtime, job["_id"]

        def work(tx: Transaction) -> None:
            current = tx.get(job_id)
            if current is None or current["state"]["kind"] != "pending":
                return
            state = runtime.execute_scheduled(job["name"], job["args"][0], tx)
            _set_state(tx, current, state, tx.ts / 1_000_000)

        await self._store.write(work)

    async def _run_action(self, job: dict[str, Any]) -> None:
        job_id = job["_id"]

        def claim(tx: Transaction) -> bool:
            current = tx.get(job_id)
            if current is None or current["state"]["kind"] != "pending":
                return False
            _set_state(tx, current, {"kind": "inProgress"}, tx.ts / 1_000_000)
            return True

        if not (await self._store.write(claim))[0]:
            return
        result = await self._runtime.run("action", job["name"], job["args"][0], admin=True)
        state = (
            {"kind": "success"} if result.ok else {"kind": "failed", "error": result.error_message}
        )
        await self._finish(job_id, state)

    async def _finish(self, job_id: str, state: dict[str, Any]) -> None:
        def work(tx: Transaction) -> None:
            current = tx.get(job_id)
            if current is not None:
                _set_state(tx, current, state, tx.ts / 1_000_000)

        await self._store.write(work)
