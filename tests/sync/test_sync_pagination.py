"""Reactive pagination over the sync protocol: journals pin each page's end (wire spec
2.6, convex-semantics 3.4), so live pages grow and shrink and never leave gaps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sync.sync_kit import SyncApi, add, serving

SCHEMA = """
    from gateway import define_schema, define_table, v
    schema = define_schema({
        "items": define_table({"n": v.float64()}).index("by_n", ["n"]),
    })
"""

ITEMS = """
    from gateway import mutation, query, v

    @mutation(args={"n": v.float64()})
    async def put(ctx, args):
        return await ctx.db.insert("items", args)

    @mutation(args={"n": v.float64()})
    async def drop(ctx, args):
        row = await ctx.db.query("items").with_index("by_n", lambda q: q.eq("n", args["n"])).first()
        await ctx.db.delete("items", row["_id"])

    @query
    async def page(ctx, args):
        result = await ctx.db.query("items").with_index("by_n").paginate(args["paginationOpts"])
        return {"ns": [r["n"] for r in result["page"]], "isDone": result["isDone"],
                "continueCursor": result["continueCursor"]}

    @query
    async def plain(ctx, args):
        return len(await ctx.db.query("items").collect())
"""


@pytest.fixture
async def pages_api(make_app: Any, tmp_path: Path) -> AsyncIterator[SyncApi]:
    async with serving(make_app(schema=SCHEMA, items=ITEMS), tmp_path / "data") as api:
        yield api


def opts(cursor: str | None, num: int = 5) -> dict[str, Any]:
    return {"paginationOpts": {"numItems": num, "cursor": cursor}}


async def put(client: Any, n: float) -> None:
    await client.call("Mutation", "items:put", {"n": n})
    await client.response("MutationResponse")


async def test_sync_paginated_pages_grow_without_gaps(pages_api: SyncApi) -> None:
    client = await pages_api.open()
    for n in range(0, 100, 10):  # 0, 10, ..., 90
        await put(client, float(n))
    await client.modify(add(0, "items:page", opts(None)), add(9, "items:plain"))
    first = await client.transition()
    page1 = first["modifications"][0]
    assert page1["value"]["ns"] == [0, 10, 20, 30, 40]
    journal = page1["journal"]
    assert isinstance(journal, str) and journal  # an opaque string: the pinned end
    assert first["modifications"][1]["journal"] is None  # did not paginate
    cursor = page1["value"]["continueCursor"]
    await client.modify(add(1, "items:page", opts(cursor)))
    second = await client.transition()
    assert [m["queryId"] for m in second["modifications"]] == [1]
    assert client.results[1][1]["ns"] == [50, 60, 70, 80, 90]
    page2_journal = second["modifications"][0]["journal"]

    # A document sorting inside page 1: page 1 grows to 6, page 2 is unchanged.
    await client.call("Mutation", "items:put", {"n": 15.0})
    _, after = await client.response("MutationResponse")
    assert [m["queryId"] for m in after["modifications"]] == [0, 9]
    assert client.results[0][1]["ns"] == [0, 10, 15, 20, 30, 40]
    assert client.results[0][1]["continueCursor"] == cursor  # still ends where it ended
    assert after["modifications"][0]["journal"] == journal
    assert client.results[1][1]["ns"] == [50, 60, 70, 80, 90]

    # At the boundary (just after page 1's end): page 2 takes it, page 1 does not.
    await put(client, 45.0)
    assert client.results[0][1]["ns"] == [0, 10, 15, 20, 30, 40]
    assert client.results[1][1]["ns"] == [45, 50, 60, 70, 80, 90]
    # Page 2 filled exactly (not done); the last page, from its cursor, is empty and done
    # and pins the "end" cursor: it takes what is inserted past page 2's end.
    assert client.results[1][1]["isDone"] is False
    await client.modify(add(2, "items:page", opts(client.results[1][1]["continueCursor"])))
    await client.transition()
    assert client.results[2][1]["ns"] == [] and client.results[2][1]["isDone"] is True
    await put(client, 95.0)
    assert client.results[1][1]["ns"] == [45, 50, 60, 70, 80, 90]
    assert client.results[2][1]["ns"] == [95] and client.results[2][1]["isDone"] is True
    # Deletes shrink a page; the next page does not shift either.
    await client.call("Mutation", "items:drop", {"n": 0.0})
    await client.response("MutationResponse")
    assert client.results[0][1]["ns"] == [10, 15, 20, 30, 40]
    assert client.results[1][1]["ns"] == [45, 50, 60, 70, 80, 90]
    # Every document exactly once across the pages.
    every = [n for q in (0, 1, 2) for n in client.results[q][1]["ns"]]
    assert every == sorted(set(every)) and len(every) == 12
    assert page2_journal is not None
    await client.close()


async def test_sync_add_with_a_journal_resumes_the_pinned_end(pages_api: SyncApi) -> None:
    """After a reconnect the JS client resubscribes with the journal it last saw."""
    client = await pages_api.open()
    for n in range(10):
        await put(client, float(n))
    await client.modify(add(0, "items:page", opts(None)))
    journal = (await client.transition())["modifications"][0]["journal"]
    assert client.results[0][1]["ns"] == [0, 1, 2, 3, 4]
    await client.close()

    other = await pages_api.open()
    await put(other, 2.5)
    resumed = {**add(3, "items:page", opts(None)), "journal": journal}
    fresh = add(4, "items:page", opts(None))
    garbage = {**add(5, "items:page", opts(None)), "journal": "not-a-journal"}
    await other.modify(resumed, fresh, garbage)
    mods = (await other.transition())["modifications"]
    assert other.results[3][1]["ns"] == [0, 1, 2, 2.5, 3, 4]  # pinned: grew to 6
    assert mods[0]["journal"] == journal
    assert other.results[4][1]["ns"] == [0, 1, 2, 2.5, 3]  # no journal: 5 items
    assert other.results[5][1]["ns"] == [0, 1, 2, 2.5, 3]  # unknown journal: ignored
    await other.close()
