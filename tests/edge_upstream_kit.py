"""Helpers of the edge replication tests: an app with an ``up`` table, and a fake upstream.

The fake upstream is a small aiohttp server that answers ``POST /api/mutation`` for
``PUSH_PATH`` by the rules of ``gateway/replication/batch.py``: one mark per (gateway,
epoch), batches seen before acknowledged without being applied again, gaps refused with
``ReplicationGap``, a wrong key refused with ``ReplicationUnauthorized``. It records every
change it applied, so a test can check exactly-once and order.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.replication.batch import GAP_CODE, PUSH_PATH, UNAUTHORIZED_CODE

KEY = "edge-test-key-0123456789abcdef0123456789"

SCHEMA = """
from gateway import define_schema, define_table, v

schema = define_schema({
    "readings": define_table({"n": v.float64()}).replicate("up"),
    "scratch": define_table({"n": v.float64()}),
})
"""
# The same with an optional ``pad`` string: bigger documents, so more batches.
PADDED_SCHEMA = SCHEMA.replace(
    '{"n": v.float64()}', '{"n": v.float64(), "pad": v.optional(v.string())}', 1
)
FUNCTIONS = """
from gateway import mutation, query

@mutation
async def add(ctx, args):
    return await ctx.db.insert("readings", {"n": args["n"]})

@mutation
async def add_many(ctx, args):
    pad = {"pad": "x" * int(args["pad"])} if args.get("pad") else {}  # PADDED_SCHEMA only
    for n in range(int(args["start"]), int(args["start"]) + int(args["count"])):
        await ctx.db.insert("readings", {"n": float(n), **pad})

@mutation
async def bump(ctx, args):
    doc = await ctx.db.get(args["id"])
    await ctx.db.patch(args["id"], {"n": doc["n"] + 1})

@mutation
async def remove(ctx, args):
    await ctx.db.delete(args["id"])

@mutation
async def local(ctx, args):
    return await ctx.db.insert("scratch", {"n": args["n"]})

@query
async def ids(ctx, args):
    return [d["_id"] for d in await ctx.db.query("readings").take(int(args["limit"]))]

@query
async def count(ctx, args):
    return len(await ctx.db.query("readings").collect())
"""


def write_app(root: Path, schema: str = SCHEMA) -> Path:
    """The edge app (``readings`` replicates up, ``scratch`` stays local)."""
    convex = root / "convex"
    convex.mkdir(parents=True, exist_ok=True)
    (convex / "schema.py").write_text(textwrap.dedent(schema))
    (convex / "readings.py").write_text(textwrap.dedent(FUNCTIONS))
    return root


class FakeUpstream:
    """The contract's upstream, in memory; ``down`` answers 503, ``key`` is the valid key."""

    def __init__(self, key: str = KEY) -> None:
        self.key = key
        self.marks: dict[tuple[str, int], int] = {}
        self.applied: list[dict[str, Any]] = []  # every change applied, in order
        self.docs: dict[str, Any] = {}  # id -> document (None once deleted)
        self.batches: list[dict[str, Any]] = []  # every batch received
        self.down = False
        self.refuse_gzip = False  # answer a gzipped request body with 415
        self.gzipped = 0  # requests that came gzipped
        self.gap_once_at: int | None = None  # refuse the first batch starting here
        # Each answer waits this long, half the time before applying and half after
        # (a kill of the edge then lands between the apply and its acknowledgement).
        self.delay_s = 0.0
        self.late_every_other = True  # else every answer waits delay_s, then applies
        self.open_requests = 0  # requests being answered now, and the most at once
        self.most_open = 0
        self._turn = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, port: int = 0) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/mutation", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def seqs(self, gateway: str | None = None) -> list[tuple[int, int]]:
        """(epoch, seq) of every applied change."""
        return [(c["_epoch"], int(c["seq"])) for c in self.applied]

    async def _handle(self, request: web.Request) -> web.Response:
        self.open_requests += 1
        self.most_open = max(self.most_open, self.open_requests)
        try:
            return await self._answer(request)
        finally:
            self.open_requests -= 1

    async def _answer(self, request: web.Request) -> web.Response:
        if self.down:
            return web.Response(status=503, text="down for the test")
        if request.headers.get("Content-Encoding") == "gzip":
            if self.refuse_gzip:
                return web.Response(status=415, text="no gzip here")
            self.gzipped += 1
        body = await request.json()
        assert body["path"] == PUSH_PATH and body["format"] == "json"
        batch = body["args"]
        self.batches.append(batch)
        if batch["key"] != self.key:
            return _error("unauthorized", {"code": UNAUTHORIZED_CODE})
        mark_key = (batch["gateway"], int(batch["epoch"]))
        first, last = int(batch["first"]), int(batch["last"])
        assert [int(c["seq"]) for c in batch["changes"]] == list(range(first, last + 1))
        self._turn += 1
        late = self._turn % 2 == 0 and self.late_every_other
        if self.delay_s and not late:
            await asyncio.sleep(self.delay_s)
        answer = self._apply(batch, mark_key, first, last)
        if self.delay_s and late:
            await asyncio.sleep(self.delay_s)
        return answer

    def _apply(
        self, batch: dict[str, Any], mark_key: tuple[str, int], first: int, last: int
    ) -> web.Response:
        applied = self.marks.get(mark_key)
        if self.gap_once_at is not None and first == self.gap_once_at:
            self.gap_once_at = None
            return _error("gap", {"code": GAP_CODE, "applied": float(applied or 0)})
        if applied is not None and last <= applied:
            return _ok(applied)
        if applied is not None and first > applied + 1:
            return _error("gap", {"code": GAP_CODE, "applied": float(applied)})
        for change in batch["changes"]:
            if applied is not None and int(change["seq"]) <= applied:
                continue
            self.applied.append({**change, "_epoch": mark_key[1]})
            if change["op"] in ("insert", "update"):
                self.docs[change["id"]] = change["doc"]
            elif change["op"] == "delete":
                self.docs[change["id"]] = None
        self.marks[mark_key] = last
        return _ok(last)


def _ok(applied: int) -> web.Response:
    return web.json_response({"status": "success", "value": {"applied": float(applied)}})


def _error(message: str, data: dict[str, Any]) -> web.Response:
    return web.json_response(
        {"status": "error", "errorMessage": message, "errorData": data, "logLines": []}
    )


class BlackHole:
    """A TCP listener that accepts connections and never answers (nor closes them)."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._held: list[asyncio.StreamWriter] = []
        self.url = ""

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._held.append(writer)

    @property
    def connections(self) -> int:
        return len(self._held)

    async def stop(self) -> None:
        for writer in self._held:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def eventually(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Wait until ``check()`` holds, failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
