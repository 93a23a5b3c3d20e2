"""The dashboard backend tests' kit: an app with a schema, functions, crons and HTTP
routes, and a call helper that runs a ``_system/dashboard/...`` function as an admin.

Named apart from ``conftest`` so each test imports it as
``from dashboard_api.dashboard_api_kit import ...``.
"""

from __future__ import annotations

from typing import Any

from gateway import Gateway

SCHEMA = """
    from gateway import define_schema, define_table, v
    schema = define_schema({
        "readings": define_table({
            "device": v.string(),
            "celsius": v.float64(),
            "seq": v.optional(v.int64()),
            "note": v.optional(v.string()),
        }).index("by_device", ["device"]),
        "notes": define_table({"text": v.string()}),
    })
"""

READINGS = """
    from gateway import action, internal_mutation, mutation, query, v

    @mutation(args={"device": v.string(), "celsius": v.float64()})
    async def add(ctx, args):
        print("adding", args["device"])
        return await ctx.db.insert("readings", args)

    @query(args={"device": v.string()}, returns=v.array(v.any()))
    async def latest(ctx, args):
        return await (ctx.db.query("readings")
                      .with_index("by_device", lambda q: q.eq("device", args["device"]))
                      .order("desc").take(10))

    @internal_mutation
    async def later(ctx, args):
        return await ctx.scheduler.run_after(60_000, "readings:add",
                                             {"device": "x", "celsius": 1.0})

    @action(args={"text": v.string()})
    async def shout(ctx, args):
        print("shouting")
        return args["text"].upper()
"""

CRONS = """
    from gateway import cron_jobs
    crons = cron_jobs()
    crons.cron("tick", "0 0 1 1 *", "readings:add", {"device": "cron", "celsius": 0.0})
"""

HTTP = """
    from aiohttp import web
    from gateway import http_action, http_router
    http = http_router()

    @http.route(path="/ingest", method="POST")
    @http_action
    async def ingest(ctx, request):
        return web.json_response({"ok": True})
"""

APP = {"schema": SCHEMA, "readings": READINGS, "crons": CRONS, "http": HTTP}


async def admin(gw: Gateway, kind: str, path: str, args: dict[str, Any] | None = None) -> Any:
    """Run ``path`` as an admin and return its value (its error raised)."""
    return (await gw.call(kind, path, args or {}, admin=True)).unwrap()  # type: ignore[arg-type]


async def refused(gw: Gateway, kind: str, path: str, args: dict[str, Any] | None = None) -> str:
    """The error message of a call without the admin key (asserted to fail)."""
    result = await gw.call(kind, path, args or {}, admin=False)  # type: ignore[arg-type]
    assert not result.ok
    return result.error_message


async def failure(gw: Gateway, kind: str, path: str, args: dict[str, Any]) -> str:
    """The error message of an admin call that must fail."""
    result = await gw.call(kind, path, args, admin=True)  # type: ignore[arg-type]
    assert not result.ok, result.value
    return result.error_message


FIRST_PAGE = {"numItems": 50, "cursor": None}
