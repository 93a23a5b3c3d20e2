"""A live search query through npm ``convex``'s ``ConvexClient``: each mutation resolves
only after the subscription shows its effect on the search results."""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
from pathlib import Path

from sync.sync_kit import serving

SEARCH_NPM_SCHEMA = """
    from gateway import define_schema, define_table, v
    schema = define_schema({
        "notes": define_table({"body": v.string(), "site": v.string(), "level": v.float64()})
            .search_index("search_body", search_field="body", filter_fields=["site"]),
    })
"""
SEARCH_NPM_NOTES = """
    from gateway import mutation, query

    @mutation
    async def add(ctx, args):
        return await ctx.db.insert("notes", args)

    @mutation
    async def patch(ctx, args):
        await ctx.db.patch("notes", args["id"], args["fields"])

    @mutation
    async def remove(ctx, args):
        await ctx.db.delete("notes", args["id"])

    @query
    async def find(ctx, args):
        rows = await (ctx.db.query("notes")
            .with_search_index("search_body", lambda q: q.search("body", args["text"]).eq("site", args["site"]))
            .take(10))
        return [[r["body"], r["level"]] for r in rows]
"""
SEARCH_NPM_SCRIPT = Path(__file__).resolve().parent / "node" / "search_client.mjs"


async def _search_node(script: Path, prefix: Path, payload: dict) -> dict:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(script),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "CONVEX_NPM_PREFIX": str(prefix)},
    )
    out, err = await asyncio.wait_for(proc.communicate(json.dumps(payload).encode()), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def test_sync_npm_convex_client_live_search(make_app, tmp_path, convex_npm: Path) -> None:
    app = make_app(
        schema=textwrap.dedent(SEARCH_NPM_SCHEMA), notes=textwrap.dedent(SEARCH_NPM_NOTES)
    )
    async with serving(app, tmp_path / "data") as api:
        url = f"http://127.0.0.1:{api.port}"
        report = await _search_node(SEARCH_NPM_SCRIPT, convex_npm, {"url": url})
    assert "failure" not in report, report
    assert report["atResolve"] == [
        [],
        ["Pump failure"],
        ["Pump failure"],  # the south document is outside the filter
        [],  # no longer matches
        ["fan stuck"],  # matches again through the prefix "fa"
        [],
    ], report
    assert not [e for e in report["logged"] if e[0] == "error"], report["logged"]
