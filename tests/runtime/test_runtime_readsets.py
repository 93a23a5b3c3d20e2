"""Read sets record what a query actually read; pagination walks a table exactly once."""

from __future__ import annotations

import pytest

from gateway import Gateway, Settings
from gateway.errors import InvalidCursorError

SCHEMA = """
    from gateway import define_schema, define_table, v
    schema = define_schema({
        "readings": define_table({"device": v.string(), "celsius": v.float64(), "note": v.optional(v.string())})
            .index("by_device", ["device"])
            .replicate("up")
            .retention(max_rows=5),
    })
"""
FNS = """
    from gateway import mutation, query, pagination_opts, v

    @mutation
    async def add(ctx, args):
        return await ctx.db.insert("readings", args)

    @mutation
    async def note(ctx, args):
        await ctx.db.patch("readings", args["id"], {"note": args["note"]})

    @mutation
    async def move(ctx, args):
        await ctx.db.patch("readings", args["id"], {"device": args["device"]})

    @mutation
    async def remove(ctx, args):
        await ctx.db.delete("readings", args["id"])

    @query
    async def first10(ctx, args):
        return await ctx.db.query("readings").with_index("by_device", lambda q: q.eq("device", args["device"])).take(10)

    @query(args={"paginationOpts": pagination_opts})
    async def page(ctx, args):
        return await ctx.db.query("readings").paginate(args["paginationOpts"])

    @query(args={"paginationOpts": pagination_opts})
    async def page_desc(ctx, args):
        return await ctx.db.query("readings").order("desc").paginate(args["paginationOpts"])

    @query(args={"paginationOpts": pagination_opts})
    async def two_pages(ctx, args):
        await ctx.db.query("readings").paginate(args["paginationOpts"])
        return await ctx.db.query("readings").paginate(args["paginationOpts"])
"""


@pytest.fixture
async def gw(make_app, tmp_path):
    settings = Settings(retention_interval_s=0)
    async with Gateway.open(make_app(schema=SCHEMA, fns=FNS), tmp_path / "d", settings) as g:
        yield g


async def _commit_keys(gw: Gateway, path: str, args: dict) -> list[tuple[int, bytes]]:
    seen: list = []
    unsubscribe = gw.store.write_log.subscribe(seen.extend)
    try:
        await gw.run_mutation(path, args)
    finally:
        unsubscribe()
    return [key for commit in seen for key in commit.changed_keys]


async def test_take_10_reads_only_up_to_where_it_stopped(gw) -> None:
    ids = [
        await gw.run_mutation("fns:add", {"device": "d", "celsius": float(i)}) for i in range(15)
    ]
    result = await gw.call("query", "fns:first10", {"device": "d"})
    assert len(result.value) == 10
    read_set = result.read_set
    assert read_set is not None
    # A write beyond the 10th row (same index range, later key) does not intersect.
    late = await _commit_keys(gw, "fns:note", {"id": ids[12], "note": "x"})
    assert not read_set.intersects(late)
    inserted = await _commit_keys(gw, "fns:add", {"device": "d", "celsius": 99.0})
    assert not read_set.intersects(inserted)
    other_device = await _commit_keys(gw, "fns:add", {"device": "zzz", "celsius": 1.0})
    assert not read_set.intersects(other_device)
    # A patch of a non-indexed field of a document inside the range does.
    inside = await _commit_keys(gw, "fns:note", {"id": ids[3], "note": "y"})
    assert read_set.intersects(inside)
    # So does moving a document out of the range, and deleting one.
    moved = await _commit_keys(gw, "fns:move", {"id": ids[4], "device": "e"})
    assert read_set.intersects(moved)
    deleted = await _commit_keys(gw, "fns:remove", {"id": ids[5]})
    assert read_set.intersects(deleted)


async def test_a_query_of_a_missing_table_depends_on_its_creation(make_app, tmp_path) -> None:
    app = make_app(
        fns="""
            from gateway import mutation, query

            @query
            async def all(ctx, args):
                return await ctx.db.query("later").collect()

            @mutation
            async def create(ctx, args):
                await ctx.db.insert("later", {"x": 1})
        """
    )
    async with Gateway.open(app, tmp_path / "d") as g:
        result = await g.call("query", "fns:all")
        assert result.value == []
        keys = await _commit_keys(g, "fns:create", {})
        assert result.read_set.intersects(keys)


@pytest.mark.parametrize("path", ["fns:page", "fns:page_desc"])
async def test_pagination_to_the_end_has_no_gaps_or_duplicates(make_app, tmp_path, path) -> None:
    app = make_app(schema=SCHEMA.replace(".retention(max_rows=5)", ""), fns=FNS)
    async with Gateway.open(app, tmp_path / "d") as g:
        ids = {
            await g.run_mutation("fns:add", {"device": "d", "celsius": float(i)}) for i in range(57)
        }
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await g.run_query(path, {"paginationOpts": {"numItems": 10, "cursor": cursor}})
            seen += [d["_id"] for d in page["page"]]
            pages += 1
            cursor = page["continueCursor"]
            if page["isDone"]:
                break
        assert len(seen) == len(set(seen)) == 57 and set(seen) == ids
        assert pages == 6
        times = [(await g.run_query("fns:first10", {"device": "x"})) for _ in range(1)]
        assert times == [[]]
        # A cursor from another query is refused.
        other = "fns:page_desc" if path == "fns:page" else "fns:page"
        first = await g.run_query(path, {"paginationOpts": {"numItems": 5, "cursor": None}})
        bad = await g.call(
            "query", other, {"paginationOpts": {"numItems": 5, "cursor": first["continueCursor"]}}
        )
        assert isinstance(bad.error, InvalidCursorError)
        assert "InvalidCursor" in bad.error_message


async def test_end_cursor_pins_a_page(gw) -> None:
    for i in range(8):
        await gw.run_mutation("fns:add", {"device": "d", "celsius": float(i)})
    first = await gw.run_query("fns:page", {"paginationOpts": {"numItems": 3, "cursor": None}})
    await gw.run_mutation("fns:add", {"device": "d", "celsius": 100.0})
    again = await gw.run_query(
        "fns:page",
        {"paginationOpts": {"numItems": 3, "cursor": None, "endCursor": first["continueCursor"]}},
    )
    assert [d["_id"] for d in again["page"]] == [d["_id"] for d in first["page"]]
    assert again["continueCursor"] == first["continueCursor"]


async def test_one_paginate_per_function(gw) -> None:
    result = await gw.call(
        "query", "fns:two_pages", {"paginationOpts": {"numItems": 1, "cursor": None}}
    )
    assert "MultiplePaginatedDatabaseQueries" in result.error_message


async def test_bad_pagination_options(gw) -> None:
    for opts, needle in [
        ({"numItems": 0, "cursor": None}, "NoDocumentsForPagination"),
        ({"numItems": 40_000, "cursor": None}, "PageSizeTooLarge"),
        ({"numItems": 5, "cursor": "garbage"}, "InvalidCursor"),
    ]:
        result = await gw.call("query", "fns:page", {"paginationOpts": opts})
        assert needle in result.error_message, result.error_message


async def test_retention_deletes_are_not_user_deletes(gw) -> None:
    import sqlite3

    ids = [await gw.run_mutation("fns:add", {"device": "d", "celsius": float(i)}) for i in range(8)]
    await gw.run_mutation("fns:remove", {"id": ids[-1]})  # a user delete: replicated
    deleted = await gw.apply_retention()
    assert deleted == 2  # 7 rows left, keep 5
    conn = sqlite3.connect(gw.store.path)
    ops = [r[0] for r in conn.execute("SELECT op FROM change_log ORDER BY seq")]
    remaining = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    conn.close()
    assert ops == ["insert"] * 8 + ["delete"]
    assert remaining == 5
