"""The dashboard tests' gateway: a small app served on an ephemeral port and on its
admin socket (a short data directory: an AF_UNIX path holds 107 bytes)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from gateway import Gateway, Settings
from gateway.admin_socket import admin_socket_path
from gateway.http import HttpServer, load_or_create_admin_key

SCHEMA = """
    from gateway import define_schema, define_table, v
    schema = define_schema({
        "readings": define_table({"device": v.string(), "celsius": v.float64()})
            .index("by_device", ["device"]),
    })
"""

READINGS = """
    from gateway import ConvexError, internal_mutation, mutation, query, v

    @mutation(args={"device": v.string(), "celsius": v.float64()})
    async def add(ctx, args):
        print("reading from", args["device"])
        return await ctx.db.insert("readings", args)

    @query(args={"device": v.string()})
    async def latest(ctx, args):
        return await (ctx.db.query("readings")
                      .with_index("by_device", lambda q: q.eq("device", args["device"]))
                      .order("desc").take(10))

    @mutation
    async def refuse(ctx, args):
        raise ConvexError({"code": "NOPE"})

    @mutation(args={"device": v.string()})
    async def later(ctx, args):
        return await ctx.scheduler.run_after(3_600_000, "readings:add", {"device": args["device"], "celsius": 1.0})

    @internal_mutation(args={"n": v.float64()})
    async def double(ctx, args):
        print("doubling", args["n"])
        return args["n"] * 2
"""


@dataclass
class Served:
    gateway: Gateway
    url: str
    admin_key: str
    data_dir: Path
    http: HttpServer

    async def call(self, kind: str, path: str, args: dict[str, Any], *, admin: bool = False) -> Any:
        """A function's value through the HTTP API (as a device or a script would call)."""
        headers = {"Authorization": f"Convex {self.admin_key}"} if admin else {}
        body = {"path": path, "args": args, "format": "json"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/api/{kind}", json=body, headers=headers) as response,
        ):
            assert response.status == 200, await response.text()
            answer = json.loads(await response.text())
        assert answer["status"] == "success", answer
        return answer["value"]


@asynccontextmanager
async def serving(app: Path, data: Path, settings: Settings | None = None) -> AsyncIterator[Served]:
    """The gateway on ``app``, on 127.0.0.1:<ephemeral> and on ``data``'s admin socket."""
    async with Gateway.open(app, data, settings) as gw, HttpServer(gw) as http:
        port = await http.start("127.0.0.1", 0)
        await http.listen_unix(admin_socket_path(data))
        url = f"http://127.0.0.1:{port}"
        yield Served(gw, url, load_or_create_admin_key(data), data, http)


READY = "document.body.dataset.state === 'ready'"
LIVE = "document.querySelector('#link').textContent === 'live'"


async def log_in(tab: Any, admin_key: str) -> None:
    """Type the key into the login form; wait for the live link."""
    await tab.until("document.body.dataset.state === 'login'", "the login form")
    await tab.type("#key", admin_key)
    await tab.click("#login button")
    await tab.until(READY, "the dashboard")
    await tab.until(LIVE, "the live link")


def rows_of(device: str) -> str:
    """An expression: how many rows of the documents table have a cell reading ``device``."""
    return (
        "[...document.querySelectorAll('#rows tbody tr')]"
        f".filter((tr) => [...tr.cells].some((td) => td.textContent === {json.dumps(device)}))"
        ".length"
    )
