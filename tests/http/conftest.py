"""HTTP API fixtures: a real gateway on an inline app, served on an ephemeral port."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway import Gateway, Settings
from gateway.http import HttpServer, load_or_create_admin_key

SCHEMA = """
    from gateway import define_schema, define_table, v
    schema = define_schema({"messages": define_table({"body": v.string()})})
"""

MESSAGES = """
    from gateway import (ConvexError, Int64, action, internal_mutation, internal_query,
                         mutation, pagination_opts, query, v)

    @mutation(args={"body": v.string()})
    async def send(ctx, args):
        print("sending", args["body"])
        return await ctx.db.insert("messages", {"body": args["body"]})

    @query
    async def list(ctx, args):
        return await ctx.db.query("messages").collect()

    @query
    async def echo(ctx, args):
        print("echo")
        return args.get("value")

    @query(args={"id": v.id("messages")})
    async def get(ctx, args):
        return await ctx.db.get(args["id"])

    @query(args={"paginationOpts": pagination_opts})
    async def page(ctx, args):
        return await ctx.db.query("messages").paginate(args["paginationOpts"])

    @query(args={"paginationOpts": pagination_opts})
    async def page_desc(ctx, args):
        return await ctx.db.query("messages").order("desc").paginate(args["paginationOpts"])

    @mutation
    async def fail(ctx, args):
        await ctx.db.insert("messages", {"body": "never stored"})
        print("about to fail")
        raise ConvexError({"code": "E1", "n": Int64(5)})

    @mutation
    async def crash(ctx, args):
        await ctx.db.insert("messages", {"body": "never stored"})
        raise RuntimeError("boom")

    @action
    async def shout(ctx, args):
        return (await ctx.run_query("messages:echo", {"value": args["text"]})).upper()

    @mutation
    async def upload(ctx, args):
        return await ctx.storage.store(args["data"], args.get("type"))

    @internal_query
    async def secret(ctx, args):
        return "s3cret"

    @internal_mutation
    async def wipe(ctx, args):
        for doc in await ctx.db.query("messages").collect():
            await ctx.db.delete(doc["_id"])
"""

NESTED = """
    from gateway import query

    @query
    async def hello(ctx, args):
        return "hello from dir/nested"
"""

SOLO = """
    from gateway import query

    @query
    async def default(ctx, args):
        return "the default export"
"""


@dataclass
class Api:
    """A served gateway and a client session on it."""

    gateway: Gateway
    server: HttpServer
    session: aiohttp.ClientSession
    port: int
    admin_key: str

    async def post(
        self, path: str, body: Any = None, *, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = b"" if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
        return await self.send_raw(path, data, headers=headers)

    async def send_raw(
        self, path: str, data: bytes, *, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        payload = io.BytesIO(data)  # aiohttp warns about large raw bytes bodies
        async with self.session.post(path, data=payload, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def state(self) -> tuple[int, list[Any]]:
        """The newest commit ts and every stored message: 'the store is untouched'."""
        docs = await self.gateway.run_query("messages:list")
        return self.gateway.store.clock.last_ts_ns, docs


@pytest.fixture
def app_dir(make_app: Any) -> Path:
    return make_app(schema=SCHEMA, messages=MESSAGES, dir__nested=NESTED, solo=SOLO)  # type: ignore[no-any-return]


@pytest.fixture
async def api(app_dir: Path, tmp_path: Path) -> AsyncIterator[Api]:
    data = tmp_path / "data"
    async with Gateway.open(app_dir, data) as gw, HttpServer(gw) as server:
        port = await server.start("127.0.0.1", 0)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            yield Api(gw, server, session, port, load_or_create_admin_key(data))


ServeFn = Callable[..., Awaitable[Api]]


@pytest.fixture
async def serve(app_dir: Path, tmp_path: Path) -> AsyncIterator[ServeFn]:
    """``await serve(**settings)``: the app served with those settings (one per test);
    ``admin_key=`` gives the server that key instead of the data directory's."""
    async with AsyncExitStack() as stack:

        async def start(*, admin_key: str | None = None, **settings: Any) -> Api:
            data = tmp_path / "data"
            gw = await stack.enter_async_context(Gateway.open(app_dir, data, Settings()))
            server = await stack.enter_async_context(
                HttpServer(gw, admin_key=admin_key, settings=Settings(**settings))
            )
            port = await server.start("127.0.0.1", 0)
            session = await stack.enter_async_context(
                aiohttp.ClientSession(f"http://127.0.0.1:{port}")
            )
            key = admin_key or load_or_create_admin_key(data)
            return Api(gw, server, session, port, key)

        yield start
