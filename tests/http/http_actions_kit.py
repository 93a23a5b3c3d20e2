"""HTTP actions tests' shared pieces: an app with routes, and a served gateway.

The gateway is served as ``outpost serve`` serves it (the API and the site sharing the
connection cap and the body budget), each on an ephemeral port, without the CLI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from gateway import Gateway, Settings
from gateway.http import HttpServer
from gateway.http.site import SiteServer
from gateway.http.upload import LIMITS

WEBHOOK_SECRET = "whsec-test"

SCHEMA = """
    from gateway import define_schema, define_table, v
    schema = define_schema({"messages": define_table({"body": v.string()})})
"""

MESSAGES = """
    from gateway import mutation, query, v

    @mutation(args={"body": v.string()})
    async def send(ctx, args):
        return await ctx.db.insert("messages", {"body": args["body"]})

    @query
    async def list(ctx, args):
        return [d["body"] for d in await ctx.db.query("messages").collect()]
"""

HTTP = """
    import hashlib
    import hmac

    from aiohttp import web
    from gateway import http_action, http_router

    http = http_router()
    SECRET = b"WEBHOOK_SECRET"

    @http.route(path="/echo", method="POST")
    @http_action
    async def echo(ctx, request):
        return web.json_response(await request.json())

    @http.route(path="/files/exact", method="GET")
    @http_action
    async def exact(ctx, request):
        return web.Response(text="exact")

    @http.route(path_prefix="/files/", method="GET")
    @http_action
    async def files(ctx, request):
        return web.Response(text="files " + request.path)

    @http.route(path_prefix="/files/deep/", method="GET")
    @http_action
    async def deep(ctx, request):
        return web.Response(text="deep " + request.path)

    @http.route(path="/boom", method="GET")
    @http_action
    async def boom(ctx, request):
        raise ValueError("a detail only the log may show")

    @http.route(path="/wrong", method="GET")
    @http_action
    async def wrong(ctx, request):
        return {"not": "a response"}

    @http.route(path="/stream", method="GET")
    @http_action
    async def stream(ctx, request):
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        for n in range(3):
            await response.write(f"chunk {n}\\n".encode())
        await response.write_eof()
        return response

    @http.route(path="/half", method="GET")
    @http_action
    async def half(ctx, request):
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"the first part")
        raise RuntimeError("failed half-way")

    @http.route(path="/whoami", method="GET")
    @http_action
    async def whoami(ctx, request):
        return web.json_response({"identity": await ctx.auth.get_user_identity()})

    @http.route(path="/send", method="POST")
    @http_action
    async def send(ctx, request):
        body = await request.text()
        doc_id = await ctx.run_mutation("messages:send", {"body": body})
        print("stored", body)
        return web.json_response({"id": doc_id}, status=201)

    @http.route(path="/webhook", method="POST")
    @http_action
    async def webhook(ctx, request):
        raw = await request.read()
        expected = hmac.new(SECRET, raw, hashlib.sha256).hexdigest()
        given = request.headers.get("X-Signature", "")
        if not hmac.compare_digest(expected, given):
            return web.Response(status=401, text="bad signature")
        await ctx.run_mutation("messages:send", {"body": raw.decode()})
        return web.Response(status=204)

    CORS = {"Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type, Authorization",
            "Access-Control-Max-Age": "86400"}

    def cors(request):
        origin = request.headers.get("Origin", "")
        return {"Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}

    @http.route(path="/cors", method="OPTIONS")
    @http_action
    async def preflight(ctx, request):
        return web.Response(status=204, headers={**CORS, **cors(request)})

    @http.route(path="/cors", method="POST")
    @http_action
    async def cors_post(ctx, request):
        body = await request.json()
        identity = await ctx.auth.get_user_identity()
        return web.json_response({"got": body, "identity": identity}, headers=cors(request))
""".replace("WEBHOOK_SECRET", WEBHOOK_SECRET)


@dataclass
class Site:
    """A served gateway: the API, the site, and a client session on the site."""

    gateway: Gateway
    api: HttpServer
    site: SiteServer
    session: aiohttp.ClientSession
    api_url: str
    url: str


@asynccontextmanager
async def served_site(
    app_dir: Path, data_dir: Path, settings: Settings | None = None
) -> AsyncIterator[Site]:
    """The app's gateway, its API and its site on ephemeral ports, as Service wires them."""
    settings = settings or Settings()
    async with (
        Gateway.open(app_dir, data_dir, settings) as gw,
        HttpServer(gw, settings=settings) as api,
    ):
        api_port = await api.start("127.0.0.1", 0)
        assert api.guard is not None
        site = SiteServer(gw, settings, api.app[LIMITS].budget, api.guard)
        try:
            port = await site.start("127.0.0.1", 0)
            url = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession(url) as session:
                yield Site(gw, api, site, session, f"http://127.0.0.1:{api_port}", url)
        finally:
            await site.close()
