"""Per-transaction limits (convex-semantics 4.3) and page splitting."""

from __future__ import annotations

import pytest

from gateway import Gateway
from gateway.errors import LimitExceededError
from gateway.runtime import limits

FNS = """
    from gateway import mutation, query, pagination_opts

    @mutation
    async def write_many(ctx, args):
        for i in range(int(args["n"])):
            await ctx.db.insert("rows", {"i": i})

    @query
    async def read_all(ctx, args):
        return len(await ctx.db.query("rows").collect())

    @query(args={"paginationOpts": pagination_opts})
    async def page(ctx, args):
        return await ctx.db.query("rows").paginate(args["paginationOpts"])
"""


async def test_too_many_writes_and_reads_say_which_limit(make_app, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(limits, "MAX_DOCUMENTS_WRITTEN", 20)
    monkeypatch.setattr(limits, "MAX_DOCUMENTS_READ", 10)
    async with Gateway.open(make_app(fns=FNS), tmp_path / "d") as gw:
        too_many = await gw.call("mutation", "fns:write_many", {"n": 21})
        assert isinstance(too_many.error, LimitExceededError)
        assert too_many.error_message.startswith("Uncaught Error: TooManyWrites:")
        assert await gw.run_query("fns:read_all") == 0  # rolled back whole
        await gw.run_mutation("fns:write_many", {"n": 20})
        read = await gw.call("query", "fns:read_all")
        assert "TooManyDocumentsRead" in read.error_message


async def test_maximum_rows_read_splits_the_page(make_app, tmp_path) -> None:
    async with Gateway.open(make_app(fns=FNS), tmp_path / "d") as gw:
        await gw.run_mutation("fns:write_many", {"n": 30})
        opts = {"numItems": 25, "cursor": None, "maximumRowsRead": 10}
        page = await gw.run_query("fns:page", {"paginationOpts": opts})
        assert len(page["page"]) == 10 and not page["isDone"]
        assert page["pageStatus"] == "SplitRequired"
        # The two halves (cursor, split] and (split, continue] together are the page.
        first = await gw.run_query(
            "fns:page",
            {"paginationOpts": {"numItems": 25, "cursor": None, "endCursor": page["splitCursor"]}},
        )
        second = await gw.run_query(
            "fns:page",
            {
                "paginationOpts": {
                    "numItems": 25,
                    "cursor": page["splitCursor"],
                    "endCursor": page["continueCursor"],
                }
            },
        )
        halves = [d["i"] for d in first["page"]] + [d["i"] for d in second["page"]]
        assert halves == [d["i"] for d in page["page"]]
        assert 0 < len(first["page"]) < 10


@pytest.mark.parametrize("n", [0, -1, 1.5])
async def test_take_rejects_bad_counts(make_app, tmp_path, n) -> None:
    app = make_app(
        t="""
            from gateway import query

            @query
            async def take(ctx, args):
                return await ctx.db.query("rows").take(args["n"])
        """
    )
    async with Gateway.open(app, tmp_path / "d") as gw:
        result = await gw.call("query", "t:take", {"n": n})
        if n == 0:
            assert result.value == []
        else:
            assert "take() takes a non-negative integer" in result.error_message
