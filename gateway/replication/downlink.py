"""The downlink: ``.replicate("down")`` tables kept in step with the upstream, live.

One task, one sync socket to ``{upstream_url}/api/sync`` (``sync_client.py``) with one
query per ``down`` table in its query set: the changes query of
``downlink_contract`` from the table's durable cursor. Each new result with changes is
applied in one writer job together with its new cursor (``downlink_apply.py``), then
that table's query is moved to the new cursor (a new query id; results of the old one
still in flight are ignored). A page that was full (``done`` false) is followed by the
next simply because the moved query answers with it.

Applied changes are ordinary commits: WebSocket subscribers and MQTT publish rules
see them like any other write. After an outage (either side) the loop connects again
with backoff and full jitter, from the durable cursors, so nothing is missed and a
page seen twice is applied once.

- **Offline** (refused, reset, closed, no pong within ``heartbeat_s``): backoff between
  ``backoff_min_s`` and ``backoff_max_s``; one warning when the link goes down, one info
  line when it is back.
- **Unauthorized** (the query fails with ``ReplicationUnauthorized``): one error line,
  then a retry every ``unauthorized_retry_s``.
- **A page the edge cannot apply** (a bad id, a document its store refuses): logged,
  and the link starts again after ``backoff_max_s``; the cursor stays where it was, so
  nothing after the bad change is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Final

import aiohttp

from gateway.replication.batch import UNAUTHORIZED_CODE
from gateway.replication.client import (
    CONNECT_TIMEOUT_S,
    Unauthorized,
    UplinkError,
    UpstreamUnavailable,
)
from gateway.replication.downlink_apply import Applied, apply_page, read_cursors
from gateway.replication.link_state import LinkState
from gateway.replication.sync_client import QueryResult, SyncLink
from gateway.runtime.limits import MAX_BYTES_READ
from gateway.store import Store

log = logging.getLogger("gateway.replication")

BACKOFF_MIN_S: Final = 1.0
BACKOFF_MAX_S: Final = 60.0
UNAUTHORIZED_RETRY_S: Final = 300.0
# WebSocket ping interval: a link that swallows packets is noticed within this (and a
# half) seconds, well before TCP would tell.
HEARTBEAT_S: Final = 20.0
ORIGIN: Final = "downlink"  # the writer job's origin: not a local write
# A page of 1,000 documents may be far over aiohttp's 4 MiB default, but a query reads
# at most 16 MiB (Convex's limit, ``MAX_BYTES_READ``); its JSON with the frame around
# it fits four times that. Past it the frame is refused (the link retries) rather than
# an upstream's runaway answer taking the edge's memory.
MAX_FRAME_BYTES: Final = 4 * MAX_BYTES_READ


class Downlink:
    """Pulls ``tables`` from the upstream's ``path`` query; ``start`` once, ``close`` is
    idempotent."""

    def __init__(
        self,
        store: Store,
        upstream_url: str,
        *,
        key: str,
        tables: list[str],
        path: str,
        backoff_min_s: float = BACKOFF_MIN_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        unauthorized_retry_s: float = UNAUTHORIZED_RETRY_S,
        heartbeat_s: float = HEARTBEAT_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        page_limit: int | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._url = upstream_url.rstrip("/") + "/api/sync"
        self.key = key
        self.tables = list(tables)
        self._path = path
        self.link = LinkState(
            "downlink: ",
            backoff_min_s=backoff_min_s,
            backoff_max_s=backoff_max_s,
            unauthorized_retry_s=unauthorized_retry_s,
            jitter=jitter,
        )
        self._heartbeat_s = heartbeat_s
        self._connect_timeout_s = connect_timeout_s
        self._page_limit = page_limit  # None: the upstream's own (1,000)
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.cursors: dict[str, float] = {}  # durable cursors, as last written or read
        self.caught_up: dict[str, bool] = {}  # the table's latest page was its last
        self.applied = 0  # changes applied since start
        self.last_applied_ms: float | None = None  # wall ms of the latest applied change
        self.connections = 0  # sockets opened (the Connect frame's connectionCount)
        self._failures = 0  # failed connections since the link was last up (backoff)

    @property
    def state(self) -> str:
        """The link: "starting", "up", "down" (backing off) or "unauthorized"."""
        return self.link.state

    @property
    def state_since_ms(self) -> float:
        return self.link.since_ms

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name="outpost-downlink")

    async def close(self) -> None:
        """Stop pulling (a page being applied commits or not; either way it is safe)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _run(self) -> None:
        while True:
            try:
                await self._follow()
            except Unauthorized:
                await self._unauthorized()
            except UplinkError as exc:
                self._failures += 1
                await self._offline(exc, self._failures)
            except Exception:  # a bug, a store error or a page it cannot apply
                await self.link.failed()

    async def _follow(self) -> None:
        """One connection: subscribe every table from its cursor, apply what comes."""
        tables = self.tables
        self.cursors, _ = await self._store.read(lambda tx: read_cursors(tx.conn, tables))
        assert self._session is not None
        try:
            # The whole handshake under one deadline: a link that accepts the TCP
            # connection and then swallows everything never answers the upgrade.
            async with asyncio.timeout(self._connect_timeout_s):
                ws = await self._session.ws_connect(
                    self._url,
                    heartbeat=self._heartbeat_s,
                    timeout=aiohttp.ClientWSTimeout(
                        ws_receive=None, ws_close=self._connect_timeout_s
                    ),
                    max_msg_size=MAX_FRAME_BYTES,
                    compress=0,
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise UpstreamUnavailable(f"cannot open the sync socket ({exc})") from exc
        async with ws:
            await self._subscribed(SyncLink(ws))

    async def _subscribed(self, link: SyncLink) -> None:
        await link.connect(self.connections)
        self.connections += 1
        queries = _Queries(self._path)
        await link.modify([queries.add(t, self._args(t)) for t in self.tables], [])
        while True:
            for result in await link.results():
                table = queries.table_of(result.query_id)
                if table is not None:
                    await self._on_result(link, queries, table, result)

    async def _on_result(
        self, link: SyncLink, queries: _Queries, table: str, result: QueryResult
    ) -> None:
        if not result.ok:
            data = result.error_data
            if isinstance(data, dict) and data.get("code") == UNAUTHORIZED_CODE:
                raise Unauthorized("the upstream refused this gateway's key for the downlink")
            raise UpstreamUnavailable(f"the changes query of {table!r} failed: {result.error}")
        self._link_up()
        page = result.value
        if not isinstance(page, dict):
            raise UpstreamUnavailable(f"the changes query of {table!r} answered {page!r}")
        done: Applied
        done, _ = await self._store.write(lambda tx: apply_page(tx, table, page), origin=ORIGIN)
        self.caught_up[table] = bool(page.get("done", True))
        if done.applied:
            self.applied += done.applied
            self.last_applied_ms = time.time() * 1000
        if done.cursor != self.cursors.get(table):
            self.cursors[table] = done.cursor
            old = queries.current[table]
            await link.modify([queries.add(table, self._args(table))], [old])

    def _args(self, table: str) -> dict[str, Any]:
        args: dict[str, Any] = {
            "gateway": self._store.gateway_id,
            "key": self.key,
            "table": table,
            "cursor": self.cursors.get(table, 0.0),
        }
        if self._page_limit is not None:
            args["limit"] = float(self._page_limit)
        return args

    async def _unauthorized(self) -> None:
        await self.link.unauthorized(
            f"the upstream refused this gateway's downlink (id {self._store.gateway_id}): "
            "its key is wrong or it is not registered there"
        )

    async def _offline(self, exc: UplinkError, failures: int) -> None:
        await self.link.offline(exc, failures)

    def _link_up(self) -> None:
        self._failures = 0
        self.link.up("catching up")


class _Queries:
    """Query ids of one connection: a new id per (table, cursor) subscription."""

    def __init__(self, path: str) -> None:
        self._path = path
        self.current: dict[str, int] = {}
        self._tables: dict[int, str] = {}
        self._next = 0

    def add(self, table: str, args: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
        """A new query id for ``table`` (now its current one), as ``SyncLink.modify``
        takes it."""
        query_id, self._next = self._next, self._next + 1
        old = self.current.get(table)
        if old is not None:
            del self._tables[old]
        self.current[table] = query_id
        self._tables[query_id] = table
        return query_id, self._path, args

    def table_of(self, query_id: int) -> str | None:
        """The table of a live query id; None for one replaced since (a late result)."""
        table = self._tables.get(query_id)
        return table if table is not None and self.current.get(table) == query_id else None
