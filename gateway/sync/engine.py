"""The subscription engine: live queries kept current from the write log (DESIGN decision 3).

One engine per gateway. It owns every subscription of every sync session, indexed by
the read-set intervals of its last run (``IntervalIndex``). A write-log listener (on the
event loop, right after each COMMIT and before the committing callers are answered)
marks the subscriptions a commit touched as dirty with that commit's ts and wakes their
sessions. One task then runs rounds: each reruns what the woken sessions need on one
snapshot, identical queries once (``rounds``), and hands every session its Transition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import InitVar, dataclass
from typing import Any, Final

from gateway.histogram import LATENCY_BOUNDS_S, Histogram
from gateway.runtime.runtime import Runtime
from gateway.store.writelog import WriteLog
from gateway.store.writer import Committed
from gateway.sync import protocol as p
from gateway.sync.auth import TokenVerifier, refuse_user_tokens
from gateway.sync.groups import GroupIndex, GroupKey, QueryGroup
from gateway.sync.outbox import FrameCache
from gateway.sync.rounds import ExecutionSet, Intervals, SessionPlan, SharedResult, query_key
from gateway.sync.session import MAX_QUERY_BYTES, SyncSession, Transport

log = logging.getLogger("gateway.sync")

# How long a round waits for the write-log listener to reach its snapshot's ts. The
# listener runs on the loop right after COMMIT, so this is a bound, never a delay.
CATCH_UP_LIMIT_S: Final = 5.0
# Bytes of query sets all sessions together may hold (the ``max_total_query_bytes``
# setting's default): each socket's cap alone lets a few hundred sockets hold gigabytes,
# and 30 sockets of one 10 MB query each took a gateway to ~911 MB.
MAX_TOTAL_QUERY_BYTES: Final = 64 * 1024 * 1024


@dataclass(eq=False)
class Subscription:
    """One query of one session: ``(path, args)`` under the session's identity."""

    session: SyncSession
    query_id: int
    path: str
    args: dict[str, Any]
    args_json: InitVar[str]  # ``args`` as convex JSON (encoded once, where it was parsed)
    journal: str | None = None
    epoch: int = -1  # the session identity epoch of the last run (-1: never run)
    digest: bytes | None = None  # of the last result sent
    dirty_min: int | None = None  # smallest commit ts not reflected yet (None: clean)
    dirty_max: int = 0  # largest such commit ts
    key: str = ""  # what it runs, as text (``rounds.query_key``): equal keys share a run
    intervals: Intervals | None = None  # what the index holds for it (None: nothing yet)
    group: QueryGroup | None = None  # its entry in the index (``groups``)
    size: int = 0  # UTF-8 bytes of its encoded path and arguments (the socket's cap)
    args_chars: int = 0  # where the arguments' text ends in ``key``

    def __post_init__(self, args_json: str) -> None:
        key = self.key = query_key(self.path, args_json, self.journal)
        self.args_chars = len(args_json)
        # The key holds the arguments as encoded JSON: its length is their size as
        # received, without encoding them again (``isascii`` is the common, free case).
        self.size = len(key) if key.isascii() else len(key.encode("utf-8", "surrogatepass"))

    def set_journal(self, journal: str | None) -> None:
        if journal != self.journal:
            self.journal = journal
            # The arguments' text is kept once, inside the key (big arguments: megabytes).
            start = len(self.path) + 1
            self.key = query_key(self.path, self.key[start : start + self.args_chars], journal)

    def mark_dirty(self, ts: int) -> None:
        if self.dirty_min is None or ts < self.dirty_min:
            self.dirty_min = ts
        if ts > self.dirty_max:
            self.dirty_max = ts

    def reran_at(self, ts: int) -> None:
        """Its result is now from snapshot ``ts``: commits up to ``ts`` are reflected."""
        if self.dirty_min is None:
            return
        if self.dirty_max <= ts:
            self.dirty_min = None
        else:
            self.dirty_min = ts + 1


class SubscriptionEngine:
    """Subscriptions of every session, which of them each commit invalidates, and the
    one task that reruns them (``_round_loop``)."""

    def __init__(
        self,
        runtime: Runtime,
        write_log: WriteLog,
        last_ts: int,
        *,
        verifier: TokenVerifier = refuse_user_tokens,
        max_total_query_bytes: int = MAX_TOTAL_QUERY_BYTES,
    ) -> None:
        self.runtime = runtime
        self.verifier = verifier
        self.max_total_query_bytes = max_total_query_bytes
        self._query_bytes = 0  # the ``query_bytes`` of every open session
        self.ping_after_s = 15.0
        self.index = GroupIndex()
        self.sessions: set[SyncSession] = set()
        self.seen_ts = last_ts  # the newest commit the listener has processed
        self.rounds = 0  # rerun rounds run (one snapshot each; for tests and metrics)
        self.executions = 0  # query executions in those rounds (shared ones count once)
        self.marks = 0  # times a commit marked a subscription dirty (rounds compare it)
        # Seconds each round's queries took on their snapshot (queue wait included).
        self.round_seconds = Histogram(LATENCY_BOUNDS_S)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._woken: set[SyncSession] = set()
        # Keys ``touch``ed while a round ran: its reruns may have read before the change,
        # and a touch has no commit ts to tell (touched again once the round is over).
        self._in_round = False
        self._touched_in_round: set[tuple[int, bytes]] = set()
        self._wake = asyncio.Event()
        self._round_task: asyncio.Task[None] | None = None
        self._closed = False
        self._write_log = write_log
        self._unsubscribe = write_log.subscribe(self._on_commits)

    # --- sessions ----------------------------------------------------------------------

    def open_session(
        self,
        transport: Transport,
        *,
        admin_key: str | None,
        max_query_bytes: int = MAX_QUERY_BYTES,
    ) -> SyncSession:
        """A new session on ``transport``, its tasks started; ``close`` stops them.
        ``max_query_bytes`` caps the encoded paths and arguments of its query set, and
        ``max_total_query_bytes`` those of every session's together."""
        if self._closed:
            raise RuntimeError("the subscription engine is closed")
        if self._round_task is None:
            self._round_task = asyncio.create_task(self._round_loop(), name="outpost-sync-rounds")
        session = SyncSession(self, transport, admin_key=admin_key, max_query_bytes=max_query_bytes)
        self.sessions.add(session)
        session.start()
        return session

    @property
    def subscriptions(self) -> int:
        """Live queries of every open session (sync sockets and MQTT publish rules)."""
        return sum(len(session.subs) for session in self.sessions)

    @property
    def query_bytes(self) -> int:
        """Bytes of the query sets (paths and arguments) every open session holds."""
        return self._query_bytes

    def reserve_query_bytes(self, size: int) -> None:
        """Take ``size`` bytes of the budget of all sessions for a new subscription;
        raises ``ProtocolError`` (a FatalError: the client reconnects with backoff and
        resubscribes, which makes it a 503) if they do not fit."""
        held = self._query_bytes
        if held + size > self.max_total_query_bytes:
            raise p.ProtocolError(
                f"the gateway holds {held} bytes of subscriptions on all sockets already "
                f"(at most {self.max_total_query_bytes}, the setting max_total_query_bytes), "
                f"no room for a query of {size} bytes; retry later or subscribe to smaller "
                "queries"
            )
        self._query_bytes = held + size

    def release_query_bytes(self, size: int) -> None:
        """Give back ``size`` bytes taken by ``reserve_query_bytes``."""
        self._query_bytes -= size

    def session_closed(self, session: SyncSession) -> None:
        for sub in session.subs.values():
            self.index.forget(sub)
        self.sessions.discard(session)
        self._woken.discard(session)

    def wake(self, session: SyncSession) -> None:
        """``session`` has something for the next round (a query, a response, a change)."""
        self._woken.add(session)
        self._wake.set()

    async def close(self) -> None:
        """Close every session (their sockets too) and stop listening. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._unsubscribe()
        # All at once: each close may wait on its peer (bounded by its transport).
        sessions = list(self.sessions)
        await asyncio.gather(*(s.close(1001, "ServerShutdown") for s in sessions))
        if self._round_task is not None:
            self._round_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._round_task
        for _, waiter in self._waiters:
            waiter.cancel()
        self._waiters.clear()

    # --- subscriptions -----------------------------------------------------------------

    def track(self, sub: Subscription, key: GroupKey, intervals: Intervals) -> None:
        """``sub`` (which runs as group ``key``) now depends on exactly ``intervals``."""
        self.index.track(sub, key, intervals)

    def forget(self, sub: Subscription) -> None:
        self.index.forget(sub)

    def invalidate_all(self) -> None:
        """Rerun every subscription on the next round (the app's code changed: results
        may differ with no write at all). Unchanged results are still not resent."""
        for session in self.sessions:
            for sub in session.subs.values():
                sub.mark_dirty(self.seen_ts)
                self.marks += 1
            self.wake(session)

    def touch(self, keys: list[tuple[int, bytes]]) -> None:
        """Rerun the subscriptions that read any of ``keys``, as a commit that changed them
        would: for a source of results that is not a table (the dashboard's log ring,
        ``gateway.dashboard_api.logs``), on the event loop."""
        if self._in_round:
            self._touched_in_round.update(keys)
        for sub in self.index.affected(keys):
            sub.mark_dirty(self.seen_ts)
            self._woken.add(sub.session)
            self.marks += 1
        if self._woken:
            self._wake.set()

    # --- rounds ------------------------------------------------------------------------

    async def _round_loop(self) -> None:
        while True:
            await self._wake.wait()
            # One turn of the loop: a commit wakes sessions from the writer's callback
            # just before it answers the mutation's caller; let that answer join.
            await asyncio.sleep(0)
            self._wake.clear()
            await self._serve_woken()

    async def _serve_woken(self) -> None:
        # A function of its own so that its locals (the sessions of the round) go when
        # it returns: a closed session must not wait in them until the next wake.
        woken, self._woken = self._woken, set()
        sessions = [s for s in woken if s.open]
        if not sessions:
            return
        self._in_round = True
        try:
            await self._round(sessions)
        except Exception:
            log.exception("a sync round failed; closing its sockets")
            for session in sessions:
                session.abort("InternalServerError")
        finally:
            self._in_round = False
        if self._touched_in_round:
            touched, self._touched_in_round = self._touched_in_round, set()
            self.touch(list(touched))

    async def _round(self, sessions: list[SyncSession]) -> None:
        """Rerun what these sessions need on one snapshot; hand each its Transition."""
        marks = self.marks
        plans = [session.plan_round() for session in sessions]
        busy = [plan for plan in plans if plan.todo]
        shared: list[SharedResult] = []
        ts = None
        if busy:
            while True:
                executions = ExecutionSet()
                for plan in busy:
                    plan.slots = [executions.add(plan, sub) for sub in plan.todo]
                started = time.perf_counter()
                results, ts = await self.runtime.run_queries(executions.calls)
                self.round_seconds.observe(time.perf_counter() - started)
                self.rounds += 1
                self.executions += len(executions.calls)
                await self.caught_up(ts)
                # A commit inside the snapshot that the listener reported only now may
                # touch a query this round did not rerun: rerun on a newer snapshot.
                if self.marks == marks:
                    break  # no query was marked dirty since the plans were made
                marks = self.marks
                stale = [plan.session.add_stale(plan, ts) for plan in busy]
                if not any(stale):
                    break
            shared = executions.shared(results)
        frames: FrameCache = {}
        for plan in plans:
            plan.session.finish_round(plan, shared, ts if plan.todo else None, frames)
        now = asyncio.get_running_loop().time()
        for plan in plans:
            await plan.session.deliver(now)
        if ts is not None:
            self._recheck_after(ts, busy)

    def _recheck_after(self, ts: int, busy: list[SessionPlan]) -> None:
        """Check commits after the round's snapshot against the read sets it just tracked.

        The listener checked each of them when it committed, but against the read set a
        query had then: none at all for a new subscription, a smaller one for a query
        whose range grew. Without this, a write committed while the round ran would
        never reach those queries."""
        later = self._write_log.since(ts)
        if later == []:
            return  # the common case: nothing committed since the snapshot
        reran = {sub for plan in busy for sub in plan.todo}
        if later is None:  # too many commits since to know: assume they touched all
            for sub in reran:
                sub.mark_dirty(self.seen_ts)
                self._woken.add(sub.session)
        else:
            for commit in later:
                if commit.changed_keys:
                    for sub in self.index.affected(commit.changed_keys):
                        if sub in reran:
                            sub.mark_dirty(commit.ts)
                            self._woken.add(sub.session)
        if self._woken:
            self._wake.set()

    # --- the write log -----------------------------------------------------------------

    def _on_commits(self, commits: list[Committed]) -> None:
        """On the loop, right after COMMIT: mark what each commit touched."""
        try:
            for commit in commits:
                if self.index and commit.changed_keys:
                    for sub in self.index.affected(commit.changed_keys):
                        sub.mark_dirty(commit.ts)
                        self._woken.add(sub.session)
                        self.marks += 1
                if commit.ts > self.seen_ts:
                    self.seen_ts = commit.ts
            if self._woken:
                self._wake.set()
            if self._waiters:
                ready = [w for w in self._waiters if w[0] <= self.seen_ts]
                self._waiters = [w for w in self._waiters if w[0] > self.seen_ts]
                for _, waiter in ready:
                    if not waiter.done():
                        waiter.set_result(None)
        except Exception:  # never let a listener bug fail the writer's callers
            log.exception("subscription invalidation failed")

    async def caught_up(self, ts: int) -> None:
        """Return once every commit up to ``ts`` went through the listener."""
        if ts <= self.seen_ts or self._closed:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((ts, waiter))
        try:
            await asyncio.wait_for(waiter, CATCH_UP_LIMIT_S)
        except TimeoutError:
            log.warning("the write log did not reach ts %d within %.0f s", ts, CATCH_UP_LIMIT_S)
        finally:
            self._waiters = [w for w in self._waiters if w[1] is not waiter]
