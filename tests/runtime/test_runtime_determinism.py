"""Functions run where their connection lives; foreign awaits and runaways are stopped."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

from aiohttp import web

from gateway import Gateway, Settings
from gateway.errors import DeterminismError, FunctionTimeoutError

APP = {
    "bad": """
        import asyncio, threading
        import aiohttp
        from gateway import mutation, query, v

        FOREIGN = {}

        @mutation(args={})
        async def sleeps(ctx, args):
            await ctx.db.insert("notes", {"text": "before sleep"})
            await asyncio.sleep(0)

        @mutation(args={})
        async def sleeps_long(ctx, args):
            await ctx.db.insert("notes", {"text": "before sleep"})
            await asyncio.sleep(1)

        @mutation(args={})
        async def gathers(ctx, args):
            await ctx.db.insert("notes", {"text": "before gather"})
            await asyncio.gather(FOREIGN["task"])

        @mutation(args={"url": v.string()})
        async def fetches(ctx, args):
            await ctx.db.insert("notes", {"text": "before fetch"})
            async with aiohttp.ClientSession() as session:
                async with session.get(args["url"]) as resp:
                    return await resp.text()

        @mutation(args={})
        async def spins(ctx, args):
            await ctx.db.insert("notes", {"text": "spinning"})
            while True:
                pass

        @mutation(args={})
        async def spins_and_swallows(ctx, args):
            while True:
                try:
                    while True:
                        pass
                except Exception:
                    pass

        @query(args={})
        async def where(ctx, args):
            return threading.current_thread().name

        @mutation(args={})
        async def write_then_read(ctx, args):
            new_id = await ctx.db.insert("notes", {"text": "mine"})
            doc = await ctx.db.get(new_id)
            rows = await ctx.db.query("notes").collect()
            return [doc["text"], len(rows), threading.current_thread().name]

        @query(args={})
        async def count(ctx, args):
            return len(await ctx.db.query("notes").collect())

        @query(args={})
        async def frozen(ctx, args):
            return [ctx.now, ctx.random.random(), ctx.random.random()]
    """,
}


async def _rolled_back(gw: Gateway) -> bool:
    return await gw.run_query("bad:count") == 0


async def test_asyncio_sleep_zero_is_a_determinism_error(make_app, tmp_path) -> None:
    async with Gateway.open(make_app(**APP), tmp_path / "d") as gw:
        for path in ("bad:sleeps", "bad:sleeps_long"):
            result = await gw.call("mutation", path, {})
            assert isinstance(result.error, DeterminismError), result.error_message
            assert "action" in result.error_message
        assert await _rolled_back(gw)


async def test_gather_of_a_foreign_task_is_a_determinism_error(make_app, tmp_path) -> None:
    async with Gateway.open(make_app(**APP), tmp_path / "d") as gw:
        module = next(m for name, m in __import__("sys").modules.items() if name.endswith(".bad"))
        foreign = asyncio.create_task(asyncio.sleep(0.01))
        module.FOREIGN["task"] = foreign
        result = await gw.call("mutation", "bad:gathers", {})
        assert isinstance(result.error, DeterminismError), result.error_message
        await foreign
        assert await _rolled_back(gw)


async def test_an_http_request_in_a_mutation_is_a_determinism_error(make_app, tmp_path) -> None:
    hits = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(text="hello")

    server = web.Application()
    server.router.add_get("/", handler)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with Gateway.open(make_app(**APP), tmp_path / "d") as gw:
            result = await gw.call("mutation", "bad:fetches", {"url": f"http://127.0.0.1:{port}/"})
            assert isinstance(result.error, DeterminismError), result.error_message
            assert await _rolled_back(gw)
            del result
            gc.collect()
    finally:
        await runner.cleanup()
    assert hits == 0


async def test_a_busy_loop_is_aborted_within_budget_and_the_writer_goes_on(
    make_app, tmp_path
) -> None:
    settings = Settings(mutation_budget_ms=100)
    async with Gateway.open(make_app(**APP), tmp_path / "d", settings) as gw:
        for path in ("bad:spins", "bad:spins_and_swallows"):
            started = time.monotonic()
            result = await gw.call("mutation", path, {})
            elapsed = time.monotonic() - started
            assert isinstance(result.error, FunctionTimeoutError), result.error_message
            assert elapsed < 0.100 + 0.050 + 0.1, elapsed  # budget + 50 ms (+ scheduling slack)
        assert await _rolled_back(gw)
        # The writer serves the next caller normally.
        text, count, thread = await gw.run_mutation("bad:write_then_read", {})
        assert (text, count) == ("mine", 1)
        assert thread == "outpost-writer"
        assert gw.runtime.watchdog.aborts >= 2


async def test_abort_latency_is_within_50ms_of_the_budget(make_app, tmp_path) -> None:
    settings = Settings(mutation_budget_ms=200)
    async with Gateway.open(make_app(**APP), tmp_path / "d", settings) as gw:
        overshoots = []
        for _ in range(3):
            started = time.monotonic()
            await gw.call("mutation", "bad:spins", {})
            overshoots.append(time.monotonic() - started - 0.200)
        assert min(overshoots) < 0.050, overshoots


async def test_queries_run_on_reader_threads_not_the_loop(make_app, tmp_path) -> None:
    async with Gateway.open(make_app(**APP), tmp_path / "d") as gw:
        name = await gw.run_query("bad:where")
        assert name.startswith("outpost-reader-")
        assert name != threading.current_thread().name


async def test_now_is_frozen_and_random_is_seeded_per_execution(make_app, tmp_path) -> None:
    async with Gateway.open(make_app(**APP), tmp_path / "d") as gw:
        now, a, b = await gw.run_query("bad:frozen")
        assert abs(now - time.time() * 1000) < 5000
        assert a != b
        again = await gw.run_query("bad:frozen")
        assert again[1:] == [a, b]  # same snapshot, same function: same seed
