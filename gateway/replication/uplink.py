"""The uplink: the outbox drained upstream in order, exactly once, through any outage.

One task. It cuts a batch after the send position (``outbox.py``), pushes it
(``client.py``; both in the uplink's worker process by default: ``worker_link.py``)
and, only once the upstream has answered with the seq it has durably applied, moves
the cursor there and prunes (a writer job, in the background: ``_write_cursor``). So a crash at any
moment re-sends at most what was not yet acknowledged, and the upstream's
per-(gateway, epoch) mark makes the re-send a no-op (``batch.py``).

- **Gap**: the upstream says where its mark is; the edge re-sends from there.
- **The upstream is behind the cursor** (it lost what it acknowledged) or **ahead of
  everything this store ever wrote** (the store went back in time unnoticed): the
  entries it would need are pruned, or the ones it thinks it has are new. Either way
  the epoch bumps (``gateway.store.epoch``) and the stream starts a new mark upstream.
- **Offline** (refused, reset, timeouts, HTTP errors): exponential backoff with full
  jitter between ``backoff_min_s`` and ``backoff_max_s``; one warning when the link
  goes down, one info line when it is back.
- **Unauthorized**: one clear error line, then a retry every ``unauthorized_retry_s``
  (someone may run ``outpost gateway add`` on the hub meanwhile).
- **Idle**: the task sleeps until a commit wakes it (the store's write log), or
  ``idle_poll_s`` at the latest. Reads go to the store's readers, one batch at a time,
  so local writes never wait behind a draining backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from gateway.replication.client import (
    PushClient,
    ReplicationGap,
    Unauthorized,
    UplinkError,
    UpstreamUnavailable,
)
from gateway.replication.edge_status import DrainMeter
from gateway.replication.link_state import LinkState
from gateway.replication.outbox import Cut, Outbox
from gateway.store import Committed, Store

log = logging.getLogger("gateway.replication")

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 60.0
UNAUTHORIZED_RETRY_S = 300.0
IDLE_POLL_S = 5.0
# Batches sent before the first is answered: the upstream applies one while the next
# travels and the edge cuts another (an edge and its hub on two cores both stay busy;
# behind the low-priority worker process, eight keep the hub busier than four).
# A batch may reach the upstream before the one ahead of it (another connection); it is
# then refused as a gap and sent again, so order holds. Only once the upstream holds a
# mark for the epoch, though: without one, the first batch it sees starts the mark.
PIPELINE_BATCHES = 8
# ... and none is added once this many bytes of changes are in flight (so two batches
# of big documents, 4 MiB each, at the most): eight would hold 32 MiB of bodies, and as
# much again compressed, on a board with 512 MB.
PIPELINE_BYTES = 6 * 1024 * 1024


# A batch in flight: its cut, its push, and the seq the upstream had confirmed when it
# left (an answer's mark below that one is a mark gone back; above it, it may still be
# older than a confirmation taken since, from another connection).
_Flight = deque[tuple[Cut, asyncio.Task[int], int]]


def _bytes(flight: _Flight) -> int:
    return sum(cut.size_bytes for cut, _, _ in flight)


class Sender(Protocol):
    """Cuts batches after a seq and pushes them: in this process (``DirectSender``) or
    in the uplink's worker process (``worker_link.WorkerSender``)."""

    async def next_cut(self, after: int) -> Cut | None: ...

    async def push(self, batch: dict[str, Any], cut: Cut) -> int: ...

    async def close(self) -> None: ...


class DirectSender:
    """Batches cut on the store's readers and pushed by ``client``, in this process."""

    def __init__(self, outbox: Outbox, client: PushClient) -> None:
        self._outbox = outbox
        self._client = client

    async def next_cut(self, after: int) -> Cut | None:
        return await self._outbox.next_cut(after)

    async def push(self, batch: dict[str, Any], cut: Cut) -> int:
        return await self._client.push(batch, cut.encoded)

    async def close(self) -> None:
        await self._client.close()


async def _abandon(flight: _Flight) -> None:
    """Cancel the pushes in flight and wait for them (an answer then is ignored). A
    cancellation of the caller still propagates (``asyncio.wait`` raises none of theirs)."""
    pushes = [pushed for _, pushed, _ in flight]
    flight.clear()
    for pushed in pushes:
        pushed.cancel()
    if pushes:
        await asyncio.wait(pushes)
    for pushed in pushes:
        if not pushed.cancelled():
            pushed.exception()  # retrieved: an error of an abandoned push is moot


def schema_digest(schema: Any) -> str:
    """SHA-256 of the ``.replicate("up")`` tables' definitions (``Schema.to_json``)."""
    tables = [] if schema is None else schema.to_json().get("tables", [])
    up = [t for t in tables if t.get("replication") == "up"]
    text = json.dumps(up, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Uplink:
    """Drains the store's outbox to ``client``; ``start`` once, ``close`` is idempotent."""

    def __init__(
        self,
        store: Store,
        client: PushClient | Sender,
        *,
        key: str,
        schema: Callable[[], str],
        outbox: Outbox | None = None,
        backoff_min_s: float = BACKOFF_MIN_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        unauthorized_retry_s: float = UNAUTHORIZED_RETRY_S,
        idle_poll_s: float = IDLE_POLL_S,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self.key = key
        self._schema = schema
        self.outbox = outbox or Outbox(store)
        self._sender: Sender = (
            DirectSender(self.outbox, client) if isinstance(client, PushClient) else client
        )
        self.link = LinkState(
            "",
            backoff_min_s=backoff_min_s,
            backoff_max_s=backoff_max_s,
            unauthorized_retry_s=unauthorized_retry_s,
            jitter=jitter,
        )
        self._idle_poll_s = idle_poll_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.acked = 0  # the cursor, as last written
        # The highest seq the upstream has confirmed: what the uplink goes on from. The
        # cursor trails it by a writer job run in the background (``_write_cursor``).
        self._confirmed = 0
        self._cursor_task: asyncio.Task[None] | None = None
        self.batches = 0  # batches acknowledged since start
        self.drain = DrainMeter()  # entries acknowledged over the last minute
        # Whether batches carry the optional ``newest`` (``batch.py``); an upstream
        # whose push does not accept it refuses it once and is sent batches without it.
        self._report_newest = True
        # The epoch the upstream has answered a batch of (so it holds a mark for it).
        self._marked_epoch: int | None = None

    @property
    def state(self) -> str:
        """The link: "starting", "up", "down" (backing off) or "unauthorized"."""
        return self.link.state

    @property
    def state_since_ms(self) -> float:
        return self.link.since_ms

    async def start(self) -> None:
        self._unsubscribe = self._store.write_log.subscribe(self._committed)
        self._task = asyncio.create_task(self._run(), name="outpost-uplink")

    async def close(self) -> None:
        """Stop pushing (a push in flight is abandoned: it is re-sent next time)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        writing, self._cursor_task = self._cursor_task, None
        if writing is not None:  # the confirmed seq written: less to send next time
            with contextlib.suppress(Exception):
                await writing
        await self._sender.close()

    def _committed(self, commits: list[Committed]) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._drain()
            except Exception:  # a bug or a store error: logged, never a silent stop
                await self.link.failed()

    async def _drain(self) -> None:
        if self._cursor_task is not None:  # a write still on its way: the cursor it leaves
            with contextlib.suppress(Exception):
                await self._cursor_task
        self.acked = self._confirmed = await self.outbox.cursor()
        send_after = self._confirmed
        failures = 0
        flight: _Flight = deque()
        try:
            while True:
                # Until the upstream has answered a batch of this epoch it may have no mark,
                # and a batch that overtook the first would start the mark past it.
                depth = PIPELINE_BATCHES if self._marked_epoch == self._store.epoch else 1
                while len(flight) < depth and _bytes(flight) < PIPELINE_BYTES:
                    cut = await self._next_cut(send_after, wait=not flight)
                    if cut is None:
                        break
                    pushed = asyncio.create_task(self._push(cut))
                    flight.append((cut, pushed, self._confirmed))
                    send_after = cut.last
                if not flight:
                    continue
                cut, pushed, known = flight.popleft()
                try:
                    applied = await pushed
                except ReplicationGap as gap:
                    # Cut again from the upstream's mark: a batch that overtook the one
                    # ahead of it, or a batch after a lost one.
                    await _abandon(flight)
                    send_after = await self._answered(gap.applied, known, self._confirmed)
                    continue
                except UplinkError as exc:
                    # What was sent after this batch is moot: it is cut again from the
                    # position the answer (or the lack of one) leaves.
                    await _abandon(flight)
                    failures += 1
                    await self._failed(exc, failures)
                    send_after = self._confirmed
                    continue
                failures = 0
                self._link_up()
                epoch = self._marked_epoch = self._store.epoch
                settled = await self._answered(applied, known, cut.last)
                self.batches += 1
                if self._store.epoch != epoch:  # the batches in flight were of the old epoch
                    await _abandon(flight)
                    send_after = settled
        finally:
            await _abandon(flight)

    async def _push(self, cut: Cut) -> int:
        return await self._sender.push(self._batch(cut), cut)

    async def _failed(self, exc: UplinkError, failures: int) -> None:
        """Act on a push that got no acknowledgement (and no gap)."""
        if isinstance(exc, Unauthorized):
            await self._unauthorized()
        elif not self._refused_newest(exc):
            await self._offline(exc, failures)

    async def _next_cut(self, after: int, *, wait: bool) -> Cut | None:
        """The next batch; None when there is none (after an idle wait, woken by a
        commit, when ``wait``: nothing is in flight)."""
        self._wake.clear()  # before reading: a commit after the read still wakes us
        cut = await self._sender.next_cut(after)
        if cut is None and wait:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
            # that lands as the event is set (a commit), and close() would wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._idle_poll_s):
                    await self._wake.wait()
        return cut

    def _batch(self, cut: Cut) -> dict[str, Any]:
        """The batch's fields but its changes (``cut.encoded``, spliced in by the client)."""
        batch = {
            "gateway": self._store.gateway_id,
            "key": self.key,
            "epoch": float(self._store.epoch),
            "first": float(cut.first),
            "last": float(cut.last),
            "clockTrusted": cut.clock_trusted,
            "schema": self._schema(),
        }
        if self._report_newest:  # lets the hub show this gateway's lag and backlog
            batch["newest"] = float(max(cut.newest, cut.last))
        return batch

    def _refused_newest(self, exc: UplinkError) -> bool:
        """An upstream older than the optional ``newest`` refuses the unknown field:
        stop sending it (once) rather than stall the stream. Any error naming the field
        counts: a function error, or an HTTP 4xx quoting it (Convex may answer an
        argument validation error either way)."""
        if not (self._report_newest and "`newest`" in str(exc)):
            return False
        log.info("the upstream does not take a batch's `newest`; sending batches without it")
        self._report_newest = False
        return True

    async def _answered(self, applied: int, known: int, sent: int) -> int:
        """Act on a push's answer: the upstream's mark ``applied``, for a push sent when
        ``known`` was confirmed; returns the seq to send after.

        A mark between the two is no news: the upstream answered this push before it
        answered another, taken since (and abandoned batches may still land upstream).
        Only a mark below ``known``, or past everything sent, says something changed."""
        if known <= applied < self._confirmed:
            return self._confirmed
        return await self._settle(applied, sent)

    async def _settle(self, applied: int, sent: int) -> int:
        """Act on the upstream's mark (``sent``: the highest seq it was sent, as far as
        this answer tells); returns the seq to send after."""
        confirmed = self._confirmed
        ahead = applied > sent and applied > max(await self.outbox.newest(), confirmed)
        if applied < confirmed or ahead:
            why = "ahead of" if ahead else "behind this gateway's acknowledged"
            log.warning(
                "the upstream's mark (seq %d) is %s this store's outbox (acknowledged %d): "
                "starting a new replication epoch",
                applied,
                why,
                confirmed,
            )
            await self._store.bump_epoch("the upstream's mark does not match this store")
            return confirmed
        if applied > confirmed:
            self.drain.record(applied - confirmed)
            self._confirmed = applied
            if self._cursor_task is None or self._cursor_task.done():
                self._cursor_task = asyncio.create_task(self._write_cursor())
        return applied

    async def _write_cursor(self) -> None:
        """Move the cursor to the confirmed seq and prune, in writer jobs one after the
        other, each to the latest confirmation (several coalesce into one), while the
        uplink sends on: the next batch never waits for the last one's bookkeeping."""
        while self.acked < self._confirmed:
            target = self._confirmed
            try:
                await self.outbox.acknowledge(target)
            except Exception:  # a store error: the next confirmation tries again
                log.exception("moving the outbox cursor to seq %d failed", target)
                return
            self.acked = target

    async def _unauthorized(self) -> None:
        gid = self._store.gateway_id
        await self.link.unauthorized(
            f"the upstream refused this gateway (id {gid}): its key is wrong or it is not "
            f"registered there (`outpost gateway add {gid}` on the hub, then put the key in "
            "the data directory's upstream_key file)"
        )

    async def _offline(self, exc: UplinkError, failures: int) -> None:
        level = logging.WARNING if isinstance(exc, UpstreamUnavailable) else logging.ERROR
        await self.link.offline(exc, failures, level)

    def _link_up(self) -> None:
        self.link.up("draining the outbox")
