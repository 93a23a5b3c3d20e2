"""Helpers of the downlink tests: an app with a ``down`` table, a hub serving it."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from replication.hub_kit import EDGE, KEY, register

from gateway import Gateway, Settings
from gateway.http import HttpServer
from gateway.replication.downlink_contract import HUB_CHANGES_PATH

SCHEMA = """
from gateway import define_schema, define_table, v

schema = define_schema({
    "config": define_table({"device": v.string(), "rate": v.float64()}).replicate("down"),
    "readings": define_table({"celsius": v.float64()}).replicate("up"),
})
"""
FUNCTIONS = """
from gateway import mutation, query

@mutation
async def put(ctx, args):
    return await ctx.db.insert("config", {"device": args["device"], "rate": args["rate"]})

@mutation
async def rate(ctx, args):
    await ctx.db.patch(args["id"], {"rate": args["rate"]})

@mutation
async def swap(ctx, args):
    await ctx.db.replace(args["id"], {"device": args["device"], "rate": args["rate"]})

@mutation
async def drop(ctx, args):
    await ctx.db.delete(args["id"])

@mutation
async def put_then_fail(ctx, args):
    await ctx.db.insert("config", {"device": args["device"], "rate": args["rate"]})
    raise ValueError("refused after the write")

@query
async def rates(ctx, args):
    docs = await ctx.db.query("config").collect()
    return {d["device"]: d["rate"] for d in docs}
"""


def write_app(root: Path, extra: dict[str, str] | None = None) -> Path:
    """The app (``convex/schema.py``, ``convex/config.py`` and any ``extra`` files)."""
    app = root / "app"
    (app / "convex").mkdir(parents=True, exist_ok=True)
    (app / "convex" / "schema.py").write_text(textwrap.dedent(SCHEMA))
    (app / "convex" / "config.py").write_text(textwrap.dedent(FUNCTIONS))
    for name, text in (extra or {}).items():
        (app / name).write_text(textwrap.dedent(text))
    return app


@asynccontextmanager
async def hub(root: Path, **settings: Any) -> AsyncIterator[Gateway]:
    """A started hub (``hub = true``) with ``EDGE`` registered."""
    data = root / "hubdata"
    register(data)
    async with Gateway.open(write_app(root), data, Settings(hub=True, **settings)) as gw:
        yield gw


def changes_args(cursor: float = 0.0, **extra: Any) -> dict[str, Any]:
    return {"gateway": EDGE, "key": KEY, "table": "config", "cursor": cursor, **extra}


async def changes(gw: Gateway, cursor: float = 0.0, **extra: Any) -> dict[str, Any]:
    """The hub's answer to the changes query from ``cursor``."""
    result: dict[str, Any] = await gw.run_query(HUB_CHANGES_PATH, changes_args(cursor, **extra))
    return result


class Hub:
    """A hub gateway whose HTTP server can be stopped and started on the same port."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.http: HttpServer | None = None
        self.port = 0

    async def serve(self) -> None:
        self.http = HttpServer(self.gw)
        await self.http.__aenter__()
        self.port = await self.http.start("127.0.0.1", self.port)

    async def stop_serving(self) -> None:
        http, self.http = self.http, None
        if http is not None:
            await http.__aexit__(None, None, None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def served_hub(root: Path, edge: str = EDGE, port: int = 0) -> AsyncIterator[Hub]:
    """A hub served on loopback (on ``port``; 0: any free one), with ``edge`` registered
    (with ``KEY``); its app and data under ``root``, so it can be opened again."""
    data = root / "hubdata"
    register(data, edge)
    app = root / "hub" / "app"
    if not app.exists():
        write_app(root / "hub")
    async with Gateway.open(app, data, Settings(hub=True)) as gw:
        hub = Hub(gw)
        hub.port = port
        await hub.serve()
        try:
            yield hub
        finally:
            await hub.stop_serving()
