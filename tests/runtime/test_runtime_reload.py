"""Swapping the app while running (dev) and the last good copy (serve)."""

from __future__ import annotations

import asyncio
import textwrap

import pytest

from gateway import Gateway
from gateway.errors import AppLoadError

V1 = """
    from gateway import query, mutation

    @query
    async def version(ctx, args):
        return "v1"

    @mutation
    async def add(ctx, args):
        return await ctx.db.insert("notes", {"text": args["text"]})
"""
V2 = (
    V1.replace('"v1"', '"v2"')
    + """
    @query
    async def count(ctx, args):
        return len(await ctx.db.query("notes").collect())
"""
)
BROKEN = "from gateway import query\n\n@query\nasync def version(ctx, args)\n    return 1\n"
SCHEMA = """
    from gateway import define_schema, define_table, v
    schema = define_schema({"notes": define_table({"text": v.string()})})
"""
STRICTER = """
    from gateway import define_schema, define_table, v
    schema = define_schema({"notes": define_table({"text": v.float64()})})
"""


def _write(app, name: str, source: str) -> None:
    (app / "convex" / f"{name}.py").write_text(textwrap.dedent(source))


async def test_reload_swaps_the_app_and_a_broken_one_keeps_the_last(make_app, tmp_path) -> None:
    app = make_app(fns=V1)
    async with Gateway.open(app, tmp_path / "d") as gw:
        assert await gw.run_query("fns:version") == "v1"
        _write(app, "fns", V2)
        await gw.reload_app()
        assert await gw.run_query("fns:version") == "v2"
        await gw.run_mutation("fns:add", {"text": "kept"})
        _write(app, "fns", BROKEN)
        with pytest.raises(AppLoadError, match=r"fns\.py:4: SyntaxError"):
            await gw.reload_app()
        assert await gw.run_query("fns:count") == 1  # still v2, data intact


async def test_calls_in_flight_during_a_reload_all_succeed(make_app, tmp_path) -> None:
    app = make_app(fns=V1)
    async with Gateway.open(app, tmp_path / "d") as gw:
        _write(app, "fns", V2)
        calls = [gw.call("query", "fns:version") for _ in range(50)]
        results = await asyncio.gather(*calls, gw.reload_app())
        assert all(r.ok and r.value in ("v1", "v2") for r in results[:-1])
        assert await gw.run_query("fns:version") == "v2"


async def test_serve_falls_back_to_the_last_good_copy(make_app, tmp_path) -> None:
    app = make_app(fns=V1, schema=SCHEMA)
    async with Gateway.open(app, tmp_path / "d"):
        pass
    assert not (tmp_path / "d" / "app-last-good").exists()  # only a serving start keeps one
    started = await Gateway.start(app, tmp_path / "d", keep_last_good=True)
    await started.run_mutation("fns:add", {"text": "a"})
    await started.close()
    assert (tmp_path / "d" / "app-last-good" / "convex" / "fns.py").exists()
    _write(app, "fns", BROKEN)
    fallback = await Gateway.start(app, tmp_path / "d", keep_last_good=True)
    try:
        assert fallback.app_error is not None and "SyntaxError" in fallback.app_error
        assert await fallback.run_query("fns:version") == "v1"
        await fallback.run_mutation("fns:add", {"text": "still ingesting"})
    finally:
        await fallback.close()
    # A schema the stored documents violate also falls back.
    _write(app, "fns", V1)
    _write(app, "schema", STRICTER)
    refused = await Gateway.start(app, tmp_path / "d", keep_last_good=True)
    try:
        assert refused.app_error is not None and "does not match" in refused.app_error
        assert await refused.run_query("fns:version") == "v1"
    finally:
        await refused.close()
    # Without a copy (plain open), a broken app is an error, as before.
    _write(app, "fns", BROKEN)
    with pytest.raises(AppLoadError):
        async with Gateway.open(app, tmp_path / "other"):
            pass
