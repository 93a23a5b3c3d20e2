"""The serial writer: every write runs here, one after another, committed in batches.

DESIGN decision 1. One thread owns the write connection. It takes jobs from a queue,
runs each so that a failing job rolls back only itself (a SAVEPOINT, opened only when
the job touches SQLite: rows of plain inserts wait in ``PendingWrites`` and go in with
one ``executemany`` per table for the whole batch) and COMMITs
when the queue runs dry (``commit_interval_ms = 0``) or when the interval has passed,
so many mutations share one fsync. Callers are answered only after COMMIT returned;
in-memory state (clock, catalog, write log, id generator) moves only then, so a failed
COMMIT leaves no trace anywhere. (The id generator is the one exception: it only
moves forward, and an id skipped by a failed batch is harmless.)

A job may be submitted ``durable=False``: bookkeeping whose loss at a power cut costs
nothing but a redo (the uplink's cursor: a batch sent again is acknowledged, not applied
twice). Such jobs are batched only with their own kind and COMMIT with
``synchronous = NORMAL``: no fsync of their own, which would hold up the local writes
queued behind them. The next durable COMMIT's fsync covers their pages too (the WAL is
one file, synced whole, in order), so nothing written after them can outlive them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import operator
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from gateway.errors import CommitError, StoreClosedError
from gateway.histogram import Histogram
from gateway.store.catalog import Catalog
from gateway.store.diskfull import DiskGuard
from gateway.store.hlc import HybridClock
from gateway.store.pending import PendingWrites
from gateway.store.quota import OutboxQuota
from gateway.store.transaction import DocChange, Transaction
from gateway.values import IdGenerator, encode_id

# How far past ``ts`` a transaction's creation times may reach and still be its own:
# 8,192 inserts (Convex's most per mutation) at ~244 ns a step take 2 ms.
_CREATION_SLACK_NS = 10_000_000

# Jobs per COMMIT, for ``/metrics``: powers of two up to the default ``max_batch_jobs``.
BATCH_SIZE_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

log = logging.getLogger("gateway.store")

T = TypeVar("T")
Work = Callable[[Transaction], T]
CommitFn = Callable[[sqlite3.Connection], None]
FinishHook = Callable[[Transaction, list[DocChange]], None]


@dataclass
class Committed:
    """What one mutation changed, as the rest of the gateway learns it after COMMIT."""

    ts: int
    changed_keys: list[tuple[int, bytes]]
    changes: list[DocChange]
    # The tables it wrote, gathered on the writer: a listener that asks "was table T
    # written?" of a hub's thousand-document commit then looks once, not a thousand times.
    tables: frozenset[str] = frozenset()


@dataclass
class WriterStats:
    """Counters a test, benchmark or ``/metrics`` reads to see group commit happen;
    the writer thread alone moves them."""

    jobs: int = 0
    commits: int = 0
    # COMMITs of durable batches: each is one fsync of the WAL (synchronous = FULL).
    # ``commits - durable_commits`` ran at synchronous = NORMAL, with no fsync.
    durable_commits: int = 0
    failed_commits: int = 0
    handoffs: int = 0
    batch_sizes: deque[int] = field(default_factory=lambda: deque(maxlen=10_000))
    batch_histogram: Histogram = field(default_factory=lambda: Histogram(BATCH_SIZE_BOUNDS))


@dataclass
class _Job(Generic[T]):
    work: Work[T]
    future: asyncio.Future[tuple[T, int]]
    origin: str
    durable: bool = True


@dataclass
class _Outcome:
    job: _Job[Any]
    result: Any = None
    ts: int = 0
    error: BaseException | None = None


_STOP = object()


def _default_commit(conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")


def ready_slot() -> concurrent.futures.Future[None]:
    """The slot a new thread fills with "connection open" or the exception why not.

    Marked running at once, so a cancelled ``start()`` cannot cancel it under the
    thread (which would then fail to set it)."""
    ready: concurrent.futures.Future[None] = concurrent.futures.Future()
    ready.set_running_or_notify_cancel()
    return ready


_TABLE_OF = operator.attrgetter("table")


class Writer:
    """Owns the write connection and its thread; ``submit`` runs work in a batch."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        catalog: Catalog,
        clock: HybridClock,
        *,
        commit_interval_ms: float = 0.0,
        max_batch_jobs: int = 256,
        on_commit: Callable[[list[Committed], Catalog], None] | None = None,
        commit_fn: CommitFn = _default_commit,
        quota: OutboxQuota | None = None,
        guard: DiskGuard | None = None,
    ) -> None:
        self.catalog = catalog
        # Refuses every write while the disk is full (``diskfull.py``); told of failures.
        self.guard = guard
        self.quota = quota or OutboxQuota()
        self.clock = clock
        # The next commit's ts comes after this (``_past_creation_times``) as well as after
        # the last commit's. Kept apart from the clock's last ts (the ``last_ts`` meta
        # row), which readers and the write log take for the newest commit's; kept in
        # the ``ts_floor`` meta row across restarts.
        self._ts_floor = 0
        self._saved_floor = 0
        self.stats = WriterStats()
        self.commit_fn = commit_fn
        self._connect = connect
        self._interval_s = commit_interval_ms / 1000.0
        self._max_batch = max_batch_jobs
        self._on_commit = on_commit
        self._ids = IdGenerator()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.thread_id: int | None = None
        self._open_jobs: list[_Job[Any]] = []
        # A durable job that came while a batch of non-durable ones ran: the next batch's.
        self._held_back: _Job[Any] | None = None
        # Called with each job's transaction and its net changes after ``finish``, inside
        # the job (its writes commit or roll back with it): the hub's downlink change log.
        self.finish_hooks: list[FinishHook] = []
        self.connection: sqlite3.Connection | None = None

    async def start(self) -> None:
        """Start the thread; returns once its connection is open, or raises why not
        (the thread has then ended)."""
        self._loop = asyncio.get_running_loop()
        ready = ready_slot()
        self._thread = threading.Thread(
            target=self._main, args=(ready,), name="outpost-writer", daemon=True
        )
        self._thread.start()
        await asyncio.wrap_future(ready)

    async def submit(
        self, work: Work[T], *, origin: str = "local", durable: bool = True
    ) -> tuple[T, int]:
        """Run ``work`` in the next batch; returns (result, commit ts) once committed:
        durable, unless ``durable=False`` (see the module's docstring)."""
        if self._closed:
            raise StoreClosedError("the store is closed; no more writes are accepted")
        if self.guard is not None:
            self.guard.check()
        assert self._loop is not None
        future: asyncio.Future[tuple[T, int]] = self._loop.create_future()
        self.stats.handoffs += 1
        self._queue.put(_Job(work, future, origin, durable))
        return await future

    @property
    def queued(self) -> int:
        """Jobs submitted and not yet taken by the writer thread (approximate)."""
        return self._queue.qsize()

    async def close(self) -> None:
        """Finish queued work, commit it, stop the thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    # --- the writer thread --------------------------------------------------------------

    def _main(self, ready: concurrent.futures.Future[None]) -> None:
        self.thread_id = threading.get_ident()
        try:
            conn = self._connect()
        except BaseException as exc:  # noqa: BLE001 - reported to start(), which raises it
            ready.set_exception(exc)
            return
        self.connection = conn
        row = conn.execute("SELECT value FROM meta WHERE key = 'ts_floor'").fetchone()
        self._ts_floor = self._saved_floor = 0 if row is None else int(row[0])
        ready.set_result(None)
        try:
            while True:
                item, self._held_back = self._held_back or self._queue.get(), None
                if item is _STOP:
                    return
                try:
                    if not self._run_batch(conn, item):
                        return
                except Exception as exc:  # a bug or a broken connection: fail, keep serving
                    log.exception("writer batch failed")
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    conn.execute("PRAGMA synchronous = FULL")
                    self._fail_open_jobs(exc)
        finally:
            conn.close()

    def _fail_open_jobs(self, exc: Exception) -> None:
        failure = self._disk_full(exc) or CommitError(
            f"the write failed inside the store ({exc}); it was not applied"
        )
        self._answer([_Outcome(job, error=failure) for job in self._open_jobs], None)
        self._open_jobs = []

    def _run_batch(self, conn: sqlite3.Connection, first: _Job[Any]) -> bool:
        """Run jobs until the queue is dry (or the interval ends); False after a STOP."""
        deadline = time.monotonic() + self._interval_s
        self._open_jobs = [first]
        durable = first.durable
        if not durable:  # set outside a transaction (SQLite refuses it inside one)
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        pending = PendingWrites(conn)
        self.quota.begin_batch(conn)
        catalog, last_ts = self.catalog, self.clock.last_ts_ns
        outcomes: list[_Outcome] = []
        committed: list[Committed] = []
        job: Any = first
        keep_running = True
        while True:
            outcome, tx = self._run_job(conn, pending, job, catalog, max(last_ts, self._ts_floor))
            outcomes.append(outcome)
            if outcome.error is None and tx is not None:
                catalog, last_ts = tx.catalog, tx.ts
                self._ts_floor = max(self._ts_floor, _past_creation_times(tx))
                changes = outcome.result[1]
                tables = frozenset(map(_TABLE_OF, changes))
                committed.append(Committed(tx.ts, tx.changed_keys, changes, tables))
                outcome.result = outcome.result[0]
            if len(outcomes) >= self._max_batch:
                break
            job = self._next_job(deadline)
            if job is None:
                break
            if job is _STOP:
                keep_running = False
                break
            if job.durable and not durable:
                self._held_back = job
                break
            self._open_jobs.append(job)
        self._commit(conn, pending, outcomes, committed, catalog, last_ts, durable=durable)
        if not durable:
            conn.execute("PRAGMA synchronous = FULL")
        self._open_jobs = []
        return keep_running

    def _next_job(self, deadline: float) -> Any:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            pass
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            return self._queue.get(timeout=remaining)
        except queue.Empty:
            return None

    def _run_job(
        self,
        conn: sqlite3.Connection,
        pending: PendingWrites,
        job: _Job[Any],
        catalog: Catalog,
        last_ts: int,
    ) -> tuple[_Outcome, Transaction | None]:
        if self.guard is not None and self.guard.full:  # queued before the disk filled
            return _Outcome(job, error=self.guard.refusal()), None
        ts = self.clock.next_ts_after(last_ts)
        pending.begin_job()
        self.quota.begin_job()
        tx = Transaction(
            conn,
            catalog,
            ts,
            writable=True,
            new_id=self._new_id,
            origin=job.origin,
            pending=pending,
            clock_trusted=self.clock.wall_trusted,  # as of ``ts``: its outbox rows carry it
            quota=self.quota,
        )
        try:
            result = job.work(tx)
            changes = tx.finish()
            for hook in self.finish_hooks:
                hook(tx, changes)
            pending.end_job(ok=True)
        except BaseException as exc:  # noqa: BLE001 - every failure is the job's own
            pending.end_job(ok=False)
            self.quota.end_job(ok=False)
            if not isinstance(exc, Exception):
                log.warning("writer job aborted: %r", exc)
            return _Outcome(job, error=self._disk_full(exc) or exc), None
        return _Outcome(job, result=(result, changes), ts=ts), tx

    def _disk_full(self, exc: BaseException) -> CommitError | None:
        """The refusal to answer with if ``exc`` was the disk filling (the guard then
        enters its state), else None."""
        if self.guard is None or not self.guard.failed(exc):
            return None
        failure = self.guard.refusal()
        failure.__cause__ = exc
        return failure

    def _new_id(self, table_number: int, ts: int) -> str:
        return encode_id(table_number, self._ids.new_internal_id(ts // 1_000_000))

    def _commit(
        self,
        conn: sqlite3.Connection,
        pending: PendingWrites,
        outcomes: list[_Outcome],
        committed: list[Committed],
        catalog: Catalog,
        last_ts: int,
        *,
        durable: bool = True,
    ) -> None:
        try:
            pending.flush()
            self.quota.persist(conn)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'last_ts'", (str(last_ts),))
            if self._ts_floor > max(last_ts, self._saved_floor):
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('ts_floor', ?)",
                    (str(self._ts_floor),),
                )
            self.commit_fn(conn)
        except Exception as exc:
            self.stats.failed_commits += 1
            self.quota.rolled_back()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = self._disk_full(exc)  # a full disk: the guard's one warning says it
            if failure is None:
                log.error("batch of %d jobs could not be committed: %s", len(outcomes), exc)
                failure = CommitError(
                    f"the write could not be made durable ({exc}); nothing in its batch was "
                    "applied — check free disk space and the storage device"
                )
            failure.__cause__ = exc
            for outcome in outcomes:
                if outcome.error is None:
                    outcome.error = failure
            self._answer(outcomes, None)
            return
        self.stats.commits += 1
        self.stats.jobs += len(outcomes)
        self.stats.durable_commits += durable
        self.stats.batch_sizes.append(len(outcomes))
        self.stats.batch_histogram.observe(len(outcomes))
        self.clock.advance_to(last_ts)
        self._saved_floor = max(self._saved_floor, self._ts_floor)
        self.catalog = catalog
        self._answer(outcomes, (committed, catalog))

    def _answer(
        self, outcomes: list[_Outcome], published: tuple[list[Committed], Catalog] | None
    ) -> None:
        assert self._loop is not None
        self.stats.handoffs += 1
        try:
            self._loop.call_soon_threadsafe(self._resolve, outcomes, published)
        except RuntimeError:  # the loop is gone (interpreter shutdown)
            pass

    def _resolve(
        self, outcomes: list[_Outcome], published: tuple[list[Committed], Catalog] | None
    ) -> None:
        if published is not None and self._on_commit is not None and published[0]:
            self._on_commit(*published)
        for outcome in outcomes:
            future = outcome.job.future
            if future.done():
                continue
            if outcome.error is not None:
                future.set_exception(outcome.error)
            else:
                future.set_result((outcome.result, outcome.ts))


def _past_creation_times(tx: Transaction) -> int:
    """The timestamp the next transaction must come after: ``tx.ts``, or more when its
    inserts' ``_creationTime`` (``ts / 1e6`` ms, then the next float up per insert) went
    past it. A float of ~1.8e12 ms moves in steps of ~244 ns, so while the HLC counts on
    by 1 ns (a wall clock set back, a leap not trusted) the next commit's creation times
    would repeat or fall below these ones without this floor (found by the clock test of
    ``tests/e2e/test_replication_clock.py``). Only creation times derived from ``ts``
    count: one further off (given by the caller) must not drag the clock along."""
    if not tx.newest_creation_ms:
        return tx.ts
    # At least the next float up, in ns; the product is off by half an ulp at most.
    ns = math.nextafter(tx.newest_creation_ms, math.inf) * 1_000_000
    floor = math.ceil(ns) + int(math.ulp(ns))
    return floor if tx.ts < floor <= tx.ts + _CREATION_SLACK_NS else tx.ts
