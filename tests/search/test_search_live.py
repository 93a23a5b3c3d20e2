"""Live search queries over the sync protocol: they rerun when a matching document is
inserted, changed or deleted, and when a document starts or stops matching."""

from __future__ import annotations

import asyncio
from typing import Any

from sync.search_client_kit import SEARCH_CLIENT_NOTES, SEARCH_CLIENT_SCHEMA
from sync.sync_kit import add, serving

from gateway import Gateway

# The same app the official-client search tests serve.
LIVE_SCHEMA, LIVE_NOTES = SEARCH_CLIENT_SCHEMA, SEARCH_CLIENT_NOTES


async def _live_write(gw: Gateway, fn: str, args: dict[str, Any]) -> Any:
    return await gw.run_mutation(f"notes:{fn}", args)


async def test_a_live_search_follows_inserts_changes_and_deletes(make_app, tmp_path) -> None:
    app = make_app(schema=LIVE_SCHEMA, notes=LIVE_NOTES)
    async with serving(app, tmp_path / "data") as api:
        gw = api.gateway
        client = await api.open()
        await client.modify(add(0, "notes:find", {"text": "pump fa", "site": "north"}))
        await client.transition()
        assert client.results[0] == ("ok", [])

        first = await _live_write(
            gw, "add", {"body": "Pump failure", "site": "north", "level": 1.0}
        )
        await client.transition()
        assert client.results[0] == ("ok", [["Pump failure", 1.0]])

        # Another field of a returned document changes: the result holds it, so it reruns.
        await _live_write(gw, "patch", {"id": first, "fields": {"level": 2.0}})
        await client.transition()
        assert client.results[0] == ("ok", [["Pump failure", 2.0]])

        # Writes outside the filter do not change the result; the next one that does is
        # the next Transition (nothing in between).
        await _live_write(gw, "add", {"body": "pump fault", "site": "south", "level": 0.0})
        second = await _live_write(gw, "add", {"body": "fan fault", "site": "north", "level": 3.0})
        await client.transition()
        assert sorted(client.results[0][1]) == [["Pump failure", 2.0], ["fan fault", 3.0]]

        # A document stops matching, then one moves into the filtered site.
        await _live_write(gw, "patch", {"id": second, "fields": {"body": "valve ok"}})
        await client.transition()
        assert client.results[0] == ("ok", [["Pump failure", 2.0]])

        await _live_write(gw, "remove", {"id": first})
        await client.transition()
        assert client.results[0] == ("ok", [])
        await client.close()


LIVE_PAGES_NOTES = """
    from gateway import mutation, query

    @mutation
    async def add(ctx, args):
        return await ctx.db.insert("notes", args)

    @query
    async def page(ctx, args):
        result = await (ctx.db.query("notes")
            .with_search_index("search_body", lambda q: q.search("body", "pump"))
            .paginate(args["paginationOpts"]))
        return {"bodies": [r["body"] for r in result["page"]], "isDone": result["isDone"],
                "continueCursor": result["continueCursor"]}
"""


async def test_live_search_pages_keep_their_end_and_leave_no_gap(make_app, tmp_path) -> None:
    app = make_app(schema=LIVE_SCHEMA, notes=LIVE_PAGES_NOTES)
    async with serving(app, tmp_path / "data") as api:
        gw = api.gateway
        for body in ["pump pump pump", "pump pump", "pump x", "pump x y", "pump x y z"]:
            await gw.run_mutation("notes:add", {"body": body, "site": "s", "level": 0.0})
        client = await api.open()
        opts = {"numItems": 2, "cursor": None}
        await client.modify(add(0, "notes:page", {"paginationOpts": opts}))
        first = await client.transition()
        assert first["modifications"][0]["journal"]  # the pinned end of page 1
        assert client.results[0][1]["bodies"] == ["pump pump pump", "pump pump"]
        cursor = client.results[0][1]["continueCursor"]
        rest = {"numItems": 10, "cursor": cursor}
        await client.modify(add(1, "notes:page", {"paginationOpts": rest}))
        await client.transition()
        assert client.results[1][1]["bodies"] == ["pump x", "pump x y", "pump x y z"]

        # A new best match: page 1 keeps its two places, and what it pushed out is the
        # first of page 2: every match is on exactly one page.
        await gw.run_mutation(
            "notes:add", {"body": "pump pump pump pump", "site": "s", "level": 0.0}
        )
        await client.transition()
        page1 = client.results[0][1]["bodies"]
        page2 = client.results[1][1]["bodies"]
        assert page1 == ["pump pump pump pump", "pump pump pump"]
        assert page2 == ["pump pump", "pump x", "pump x y", "pump x y z"]
        # Page 2 reached the end: its pin is "the end", so it holds every later match,
        # however many there are beyond its numItems.
        for i in range(12):
            body = "pump " + " ".join(["w"] * (i + 5))
            await gw.run_mutation("notes:add", {"body": body, "site": "s", "level": 0.0})
        deadline = asyncio.get_running_loop().time() + 10
        while len(client.results[1][1]["bodies"]) < 16:
            assert asyncio.get_running_loop().time() < deadline, client.results[1]
            await client.transition()
        assert len(client.results[0][1]["bodies"]) == 2
        await client.close()
