"""The uplink: the outbox drained upstream in order, exactly once, through any outage.

One task. It cuts a batch after the send position (``outbox.py``), pushes it
(``client.py``) and, only once the upstream has answered with the seq it has durably
applied, moves the durable cursor there and prunes (a writer job). So a crash at any
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
import time
from collections.abc import Callable
from typing import Any

from gateway.replication.client import (
    PushClient,
    ReplicationGap,
    Unauthorized,
    UplinkError,
    UpstreamUnavailable,
)
from gateway.replication.edge_status import DrainMeter, newest_seq
from gateway.replication.outbox import Cut, Outbox
from gateway.store import Committed, Store

log = logging.getLogger("gateway.replication")

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 60.0
UNAUTHORIZED_RETRY_S = 300.0
IDLE_POLL_S = 5.0


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
        client: PushClient,
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
        self._client = client
        self.key = key
        self._schema = schema
        self.outbox = outbox or Outbox(store)
        self._backoff = (backoff_min_s, backoff_max_s)
        self._unauthorized_retry_s = unauthorized_retry_s
        self._idle_poll_s = idle_poll_s
        self._jitter = jitter
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._state = "starting"  # "up", "down", "unauthorized"
        self.state_since_ms = time.time() * 1000  # when ``state`` last changed (wall ms)
        self.acked = 0  # the durable cursor, as last written
        self.batches = 0  # batches acknowledged since start
        self.drain = DrainMeter()  # entries acknowledged over the last minute
        # Whether batches carry the optional ``newest`` (``batch.py``); an upstream
        # whose push does not accept it refuses it once and is sent batches without it.
        self._report_newest = True

    @property
    def state(self) -> str:
        """The link: "starting", "up", "down" (backing off) or "unauthorized"."""
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        if value != self._state:
            self._state = value
            self.state_since_ms = time.time() * 1000

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
        await self._client.close()

    def _committed(self, commits: list[Committed]) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._drain()
            except Exception:  # a bug or a store error: logged, never a silent stop
                log.exception("the uplink failed; starting it again in %.0f s", self._backoff[1])
                self.state = "down"
                await asyncio.sleep(self._backoff[1])

    async def _drain(self) -> None:
        self.acked = await self.outbox.cursor()
        send_after = self.acked
        failures = 0
        while True:
            cut = await self._next_cut(send_after)
            if cut is None:
                continue
            try:
                applied = await self._client.push(await self._batch(cut))
            except ReplicationGap as gap:
                send_after = await self._settle(gap.applied)
                continue
            except Unauthorized:
                await self._unauthorized()
                continue
            except UplinkError as exc:
                if self._refused_newest(exc):
                    continue
                failures += 1
                await self._offline(exc, failures)
                continue
            failures = 0
            self._link_up()
            send_after = await self._settle(applied)
            self.batches += 1

    async def _next_cut(self, after: int) -> Cut | None:
        """The next batch, or None after an idle wait (woken by a commit)."""
        self._wake.clear()  # before reading: a commit after the read still wakes us
        cut = await self.outbox.next_cut(after)
        if cut is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._idle_poll_s)
        return cut

    async def _batch(self, cut: Cut) -> dict[str, Any]:
        batch = {
            "gateway": self._store.gateway_id,
            "key": self.key,
            "epoch": float(self._store.epoch),
            "first": float(cut.first),
            "last": float(cut.last),
            "clockTrusted": cut.clock_trusted,
            "schema": self._schema(),
            "changes": cut.changes,
        }
        if self._report_newest:  # lets the hub show this gateway's lag and backlog
            newest, _ = await self._store.read(newest_seq)
            batch["newest"] = float(max(newest, cut.last))
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

    async def _settle(self, applied: int) -> int:
        """Act on the upstream's mark; returns the seq to send after."""
        _, top = await self.outbox.backlog()
        if applied < self.acked or applied > top:
            why = "behind this gateway's acknowledged" if applied < self.acked else "ahead of"
            log.warning(
                "the upstream's mark (seq %d) is %s this store's outbox (acknowledged %d, "
                "newest %d): starting a new replication epoch",
                applied,
                why,
                self.acked,
                top,
            )
            await self._store.bump_epoch("the upstream's mark does not match this store")
            return self.acked
        if applied > self.acked:
            await self.outbox.acknowledge(applied)
            self.drain.record(applied - self.acked)
            self.acked = applied
        return applied

    async def _unauthorized(self) -> None:
        if self.state != "unauthorized":
            log.error(
                "the upstream refused this gateway (id %s): its key is wrong or it is not "
                "registered there (`outpost gateway add %s` on the hub, then put the key in "
                "the data directory's upstream_key file); retrying every %.0f s",
                self._store.gateway_id,
                self._store.gateway_id,
                self._unauthorized_retry_s,
            )
            self.state = "unauthorized"
        await asyncio.sleep(self._unauthorized_retry_s)

    async def _offline(self, exc: UplinkError, failures: int) -> None:
        if self.state != "down":
            level = logging.WARNING if isinstance(exc, UpstreamUnavailable) else logging.ERROR
            log.log(level, "upstream unreachable or refusing (%s); retrying with backoff", exc)
            self.state = "down"
        else:
            log.debug("upstream still unreachable (%s)", exc)
        low, high = self._backoff
        ceiling = min(high, low * 2 ** min(failures - 1, 30))
        await asyncio.sleep(max(low, ceiling * self._jitter()))

    def _link_up(self) -> None:
        if self.state != "up":
            if self.state in ("down", "unauthorized"):
                log.info("upstream reachable again; draining the outbox")
            self.state = "up"
