"""``ctx.db`` end to end: writes, reads, queries, nested calls, limits, logs."""

from __future__ import annotations

import asyncio
import math

import pytest

from gateway import Gateway, Int64, Settings
from gateway.errors import ConvexError, LimitExceededError

SCHEMA = """
    from gateway import define_schema, define_table, v
    schema = define_schema({
        "sensors": define_table({
            "site": v.string(), "temp": v.float64(), "count": v.optional(v.int64()),
            "meta": v.optional(v.any()),
        }).index("by_site_temp", ["site", "temp"]),
        "flat": define_table({"name": v.string(), "n": v.float64(), "big": v.optional(v.int64())}),
    }, schema_validation=True)
"""
FNS = """
    import logging
    from gateway import mutation, query, internal_mutation, action, ConvexError, v, UNSET

    log = logging.getLogger(__name__)

    @mutation
    async def insert(ctx, args):
        return await ctx.db.insert(args["table"], args["doc"])

    @mutation
    async def patch(ctx, args):
        fields = dict(args["fields"])
        for name in args.get("remove", []):
            fields[name] = UNSET
        await ctx.db.patch("sensors", args["id"], fields)
        return await ctx.db.get("sensors", args["id"])

    @mutation
    async def replace(ctx, args):
        await ctx.db.replace("sensors", args["id"], args["doc"])
        return await ctx.db.get(args["id"])

    @mutation
    async def delete(ctx, args):
        await ctx.db.delete("sensors", args["id"])
        return await ctx.db.get(args["id"])

    @query
    async def get(ctx, args):
        return await ctx.db.get(args["id"])

    @query
    async def temps(ctx, args):
        q = ctx.db.query("sensors").with_index(
            "by_site_temp", lambda q: q.eq("site", args["site"]).gt("temp", args["gt"]).lte("temp", args["lte"]))
        if args.get("desc"):
            q = q.order("desc")
        return [d["temp"] for d in await q.collect()]

    @query
    async def unique(ctx, args):
        return await ctx.db.query("sensors").with_index("by_site_temp", lambda q: q.eq("site", args["site"])).unique()

    @query
    async def filtered(ctx, args):
        rows = await ctx.db.query("sensors").filter(
            lambda q: q.and_(q.eq(q.field("site"), args["site"]), q.gt(q.field("temp"), 20.0))).collect()
        return len(rows)

    @query
    async def iterate(ctx, args):
        seen = []
        async for doc in ctx.db.query("sensors").order("desc"):
            seen.append(doc["temp"])
            if len(seen) == 3:
                break
        return seen

    @query
    async def normalize(ctx, args):
        return [ctx.db.normalize_id("sensors", args["id"]), ctx.db.normalize_id("other", args["id"]),
                ctx.db.normalize_id("sensors", "nonsense")]

    @internal_mutation
    async def failing_child(ctx, args):
        await ctx.db.insert("sensors", {"site": "child", "temp": 1.0})
        raise ConvexError("child failed")

    @mutation
    async def parent(ctx, args):
        await ctx.db.insert("sensors", {"site": "parent", "temp": 1.0})
        try:
            await ctx.run_mutation("fns:failing_child", {})
        except ConvexError as exc:
            caught = exc.data
        n = await ctx.run_query("fns:count_site", {"site": "parent"})
        return [caught, n]

    @query
    async def count_site(ctx, args):
        return len(await ctx.db.query("sensors").filter(lambda q: q.eq(q.field("site"), args["site"])).collect())

    @query
    async def query_calls_mutation(ctx, args):
        return await ctx.run_mutation("fns:insert", {"table": "sensors", "doc": {"site": "x", "temp": 1.0}})

    @mutation
    async def many_gets(ctx, args):
        for _ in range(int(args["n"])):
            await ctx.db.get(args["id"])

    @query
    async def chatty(ctx, args):
        print("hello", args["who"])
        log.warning("careful %s", args["who"])
        log.info("fyi")
        return None

    @query
    async def very_chatty(ctx, args):
        for i in range(300):
            print(i)

    @action
    async def talk(ctx, args):
        import asyncio
        for i in range(5):
            print(f"{args['who']} {i}")
            await asyncio.sleep(0.001)
        return args["who"]

    @mutation
    async def plain_count(ctx, args):
        new_id = await ctx.db.insert("sensors", {"site": "p", "temp": 1, "count": 3})
        return await ctx.db.get(new_id)

    @query
    async def returns_int(ctx, args):
        return 5

    @query(returns=v.int64())
    async def returns_int64(ctx, args):
        return 5

    @query
    async def returns_query(ctx, args):
        return ctx.db.query("sensors")
"""


@pytest.fixture
async def gw(make_app, tmp_path):
    async with Gateway.open(make_app(schema=SCHEMA, fns=FNS), tmp_path / "d") as gateway:
        yield gateway


async def _insert(gw, **doc):
    return await gw.run_mutation("fns:insert", {"table": "sensors", "doc": doc})


async def test_insert_get_patch_replace_delete(gw) -> None:
    sid = await _insert(gw, site="a", temp=20, meta={"x": [1, 2]})
    doc = await gw.run_query("fns:get", {"id": sid})
    assert doc["temp"] == 20.0 and isinstance(doc["temp"], float)
    assert doc["meta"] == {"x": [1.0, 2.0]}
    assert isinstance(doc["_creationTime"], float) and doc["_id"] == sid
    patched = await gw.run_mutation(
        "fns:patch", {"id": sid, "fields": {"temp": 21.5, "count": Int64(3)}, "remove": ["meta"]}
    )
    assert "meta" not in patched and patched["temp"] == 21.5
    assert patched["count"] == Int64(3) and isinstance(patched["count"], Int64)
    replaced = await gw.run_mutation("fns:replace", {"id": sid, "doc": {"site": "b", "temp": 1.0}})
    assert set(replaced) == {"_id", "_creationTime", "site", "temp"}
    assert replaced["_creationTime"] == doc["_creationTime"]
    assert await gw.run_mutation("fns:delete", {"id": sid}) is None
    missing = await gw.call("mutation", "fns:delete", {"id": sid})
    assert f"Delete on nonexistent document ID {sid}" in missing.error_message


async def test_a_plain_int_written_by_code_follows_the_schema(gw) -> None:
    doc = await gw.run_mutation("fns:plain_count")
    assert isinstance(doc["count"], Int64) and isinstance(doc["temp"], float)


async def test_creation_times_increase_within_one_mutation(gw, make_app, tmp_path) -> None:
    ids = await asyncio.gather(*(_insert(gw, site="s", temp=float(i)) for i in range(20)))
    times = [(await gw.run_query("fns:get", {"id": i}))["_creationTime"] for i in ids]
    assert len(set(times)) == 20


async def test_index_ranges_and_order(gw) -> None:
    for t in [5, 10, 15, 20, 25, 30]:
        await _insert(gw, site="a", temp=t)
    await _insert(gw, site="b", temp=17)
    args = {"site": "a", "gt": 10.0, "lte": 25.0}
    assert await gw.run_query("fns:temps", args) == [15.0, 20.0, 25.0]
    assert await gw.run_query("fns:temps", {**args, "desc": True}) == [25.0, 20.0, 15.0]
    assert await gw.run_query("fns:filtered", {"site": "a"}) == 2
    assert await gw.run_query("fns:iterate") == [17.0, 30.0, 25.0]


async def test_unique_raises_on_two(gw) -> None:
    one = await _insert(gw, site="u", temp=1.0)
    assert (await gw.run_query("fns:unique", {"site": "u"}))["_id"] == one
    two = await _insert(gw, site="u", temp=2.0)
    result = await gw.call("query", "fns:unique", {"site": "u"})
    assert f"unique() query returned more than one result from table sensors: [{one}, {two}]" in (
        result.error_message
    )


async def test_normalize_id(gw) -> None:
    sid = await _insert(gw, site="n", temp=1.0)
    await gw.run_mutation("fns:insert", {"table": "other", "doc": {"x": 1}})
    assert await gw.run_query("fns:normalize", {"id": sid}) == [sid, None, None]


async def test_nested_mutation_rolls_back_alone(gw) -> None:
    caught, parents = await gw.run_mutation("fns:parent")
    assert caught == "child failed" and parents == 1
    assert await gw.run_query("fns:count_site", {"site": "child"}) == 0
    assert await gw.run_query("fns:count_site", {"site": "parent"}) == 1


async def test_a_query_cannot_call_a_mutation(gw) -> None:
    result = await gw.call("query", "fns:query_calls_mutation")
    assert "Cannot call a mutation function from a query function" in result.error_message


async def test_index_range_limit(make_app, tmp_path) -> None:
    settings = Settings(mutation_budget_ms=10_000)  # 4,096 reads on a busy CI box
    async with Gateway.open(make_app(schema=SCHEMA, fns=FNS), tmp_path / "d", settings) as gw:
        await _check_range_limit(gw)


async def _check_range_limit(gw) -> None:
    sid = await _insert(gw, site="l", temp=1.0)
    assert (await gw.call("mutation", "fns:many_gets", {"id": sid, "n": 4096})).ok
    result = await gw.call("mutation", "fns:many_gets", {"id": sid, "n": 4097})
    assert isinstance(result.error, LimitExceededError)
    assert "TooManyReads" in result.error_message


async def test_log_lines(gw) -> None:
    result = await gw.call("query", "fns:chatty", {"who": "bob"})
    assert result.log_lines == ["[LOG] hello bob", "[WARN] careful bob", "[INFO] fyi"]
    result = await gw.call("query", "fns:very_chatty")
    assert len(result.log_lines) == 257
    assert result.log_lines[-1].startswith("[ERROR] Log overflow (maximum 256)")


async def test_concurrent_actions_each_get_only_their_own_lines(gw) -> None:
    a, b = await asyncio.gather(
        gw.call("action", "fns:talk", {"who": "ann"}), gw.call("action", "fns:talk", {"who": "bo"})
    )
    assert a.log_lines == [f"[LOG] ann {i}" for i in range(5)]
    assert b.log_lines == [f"[LOG] bo {i}" for i in range(5)]


async def test_return_values_follow_the_number_rules(gw) -> None:
    value = await gw.run_query("fns:returns_int")
    assert value == 5.0 and isinstance(value, float)
    value = await gw.run_query("fns:returns_int64")
    assert value == 5 and isinstance(value, Int64)
    bad = await gw.call("query", "fns:returns_query")
    assert bad.error_message.startswith("ReturnsValidationError:")


async def test_convex_error_carries_data(gw) -> None:
    result = await gw.call("mutation", "fns:failing_child", admin=True)
    assert isinstance(result.error, ConvexError) and result.error_data == "child failed"
    assert result.error_message == "Uncaught ConvexError: child failed"


async def test_bad_values_are_refused_with_a_clear_error(gw) -> None:
    for doc, needle in [
        ({"site": "a", "temp": 1.0, "meta": {1, 2}}, "set"),
        ({"site": "a", "temp": math.inf, "meta": 2**60}, "Int64"),
        ({"site": "a", "temp": 1.0, "_secret": 1}, "_secret"),
        ({"site": "a", "temp": 1.0, "meta": "x" * (1 << 20)}, "1 MiB"),
    ]:
        result = await gw.call("mutation", "fns:insert", {"table": "sensors", "doc": doc})
        assert not result.ok and needle in result.error_message, result.error_message
    assert await gw.run_query("fns:count_site", {"site": "a"}) == 0


async def test_flat_documents_are_checked_and_normalised_like_any_other(gw) -> None:
    """A table of plain scalar fields takes the one-pass check (gateway.schema.flat)."""
    ok = [
        ({"name": "a", "n": 1.5}, {"name": "a", "n": 1.5}),
        ({"name": "a", "n": 2}, {"name": "a", "n": 2.0}),  # a plain int is a float here
        ({"name": "é", "n": 1.0, "big": Int64(7)}, {"name": "é", "n": 1.0, "big": Int64(7)}),
    ]
    for doc, want in ok:
        doc_id = await gw.run_mutation("fns:insert", {"table": "flat", "doc": doc})
        got = await gw.run_query("fns:get", {"id": doc_id})
        assert {k: got[k] for k in want} == want and type(got["n"]) is float
    for doc, needle in [
        ({"name": "a", "n": 1.0, "_id": "x"}, "system field"),
        ({"name": "a"}, "n"),
        ({"name": "a", "n": 1.0, "extra": 1.0}, "extra"),
        ({"name": "x" * (1 << 20), "n": 1.0}, "1 MiB"),
        ({"name": "\ud800", "n": 1.0}, "surrogate"),
    ]:
        result = await gw.call("mutation", "fns:insert", {"table": "flat", "doc": doc})
        assert not result.ok and needle in result.error_message, result.error_message
    for table in ["flat\n", "1flat", "fl at"]:
        result = await gw.call("mutation", "fns:insert", {"table": table, "doc": {"x": 1.0}})
        assert not result.ok and "invalid table name" in result.error_message, table


async def test_env_and_auth_surfaces(make_app, tmp_path) -> None:
    app = make_app(
        who="""
            from gateway import query, action

            @query
            async def me(ctx, args):
                return [ctx.env.get("SITE"), await ctx.auth.get_user_identity()]

            @action
            async def me_too(ctx, args):
                return [ctx.env["SITE"], await ctx.auth.get_user_identity()]
        """
    )
    settings = Settings(env={"SITE": "greenhouse-3"})
    async with Gateway.open(app, tmp_path / "d", settings) as g:
        assert await g.run_query("who:me") == ["greenhouse-3", None]
        assert await g.run_action("who:me_too") == ["greenhouse-3", None]
        identity = {"subject": "u1", "issuer": "test"}
        result = await g.call("query", "who:me", identity=identity)
        assert result.value == ["greenhouse-3", identity]
