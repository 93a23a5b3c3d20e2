"""with_search_index end to end: matching, prefix, filters, relevance, limits, errors."""

from __future__ import annotations

import pytest

from gateway import Gateway

SEARCH_SCHEMA = """
    from gateway import define_schema, define_table, v
    schema = define_schema({
        "notes": define_table({"body": v.any(), "site": v.optional(v.string()), "n": v.optional(v.float64()), "note": v.optional(v.string())})
            .search_index("search_body", search_field="body", filter_fields=["site", "n"]),
    })
"""
SEARCH_NOTES = """
    from gateway import ConvexError, mutation, query, v

    @mutation
    async def add(ctx, args):
        return await ctx.db.insert("notes", args)

    @mutation
    async def add_many(ctx, args):
        for doc in args["docs"]:
            await ctx.db.insert("notes", doc)

    @mutation
    async def add_then_fail(ctx, args):
        await ctx.db.insert("notes", args)
        raise ConvexError("no")

    @mutation
    async def patch(ctx, args):
        await ctx.db.patch("notes", args["id"], args["fields"])

    @mutation
    async def remove(ctx, args):
        await ctx.db.delete("notes", args["id"])

    def _q(ctx, args):
        def build(q):
            q = q.search("body", args["text"])
            for field, value in (args.get("eq") or {}).items():
                q = q.eq(field, value)
            return q
        return ctx.db.query("notes").with_search_index("search_body", build)

    @query
    async def find(ctx, args):
        return [d["body"] for d in await _q(ctx, args).collect()]

    @query
    async def take(ctx, args):
        return [d["body"] for d in await _q(ctx, args).take(args["n"])]

    @query
    async def first(ctx, args):
        doc = await _q(ctx, args).first()
        return None if doc is None else doc["body"]

    @query
    async def page(ctx, args):
        return await _q(ctx, args).paginate(args["opts"])

    @query
    async def filtered(ctx, args):
        rows = await _q(ctx, args).filter(lambda q: q.gt(q.field("n"), 1)).collect()
        return [d["body"] for d in rows]

    @query
    async def ordered(ctx, args):
        return await _q(ctx, args).order("desc").collect()

    @query
    async def missing_site(ctx, args):
        from gateway import UNSET
        rows = await ctx.db.query("notes").with_search_index(
            "search_body", lambda q: q.search("body", args["text"]).eq("site", UNSET)).collect()
        return [d["body"] for d in rows]

    @query
    async def wrong_field(ctx, args):
        return await ctx.db.query("notes").with_search_index("search_body", lambda q: q.search("site", "x")).collect()

    @query
    async def wrong_filter(ctx, args):
        return await ctx.db.query("notes").with_search_index("search_body", lambda q: q.search("body", "x").eq("body", "x")).collect()

    @query
    async def missing_index(ctx, args):
        return await ctx.db.query("notes").with_search_index("nope", lambda q: q.search("body", "x")).collect()
"""


@pytest.fixture
async def search_gw(make_app, tmp_path):
    app = make_app(schema=SEARCH_SCHEMA, notes=SEARCH_NOTES)
    async with Gateway.open(app, tmp_path / "d") as gw:
        yield gw


async def _add(gw: Gateway, *bodies: str, **fields) -> list[str]:
    return [await gw.run_mutation("notes:add", {"body": b, **fields}) for b in bodies]


async def test_any_term_matches_and_the_last_is_a_prefix(search_gw) -> None:
    await _add(search_gw, "pump failure at site", "valve stuck", "pumping station", "fail safe")
    found = await search_gw.run_query("notes:find", {"text": "valve pump"})
    assert sorted(found) == ["pump failure at site", "pumping station", "valve stuck"]
    # Only the last term is a prefix: "pum" alone is a prefix, "pum valve" is not.
    assert await search_gw.run_query("notes:find", {"text": "pum valve"}) == ["valve stuck"]
    assert sorted(await search_gw.run_query("notes:find", {"text": "fail"})) == [
        "fail safe",
        "pump failure at site",
    ]


async def test_tokens_are_lowercased_and_split_on_non_alphanumerics(search_gw) -> None:
    await _add(search_gw, "PUMP_3/Fail-safe", "naïve Ünïcode 日本語", "x" * 33 + " long")
    assert await search_gw.run_query("notes:find", {"text": "pump 3"}) == ["PUMP_3/Fail-safe"]
    assert await search_gw.run_query("notes:find", {"text": "ÜNÏCODE"}) == ["naïve Ünïcode 日本語"]
    assert await search_gw.run_query("notes:find", {"text": "日本語"}) == ["naïve Ünïcode 日本語"]
    # A term of 32 bytes or more is not indexed (nor searched for).
    assert await search_gw.run_query("notes:find", {"text": "x" * 33}) == []
    assert await search_gw.run_query("notes:find", {"text": "xxxx"}) == []
    # Query syntax means nothing: quotes, stars and operators are separators.
    assert await search_gw.run_query("notes:find", {"text": '"safe" OR *'}) == ["PUMP_3/Fail-safe"]
    assert await search_gw.run_query("notes:find", {"text": "  ,.; "}) == []


async def test_non_string_search_fields_are_not_indexed(search_gw) -> None:
    await search_gw.run_mutation("notes:add", {"body": 5.0})
    await search_gw.run_mutation("notes:add", {"body": ["pump"]})
    await _add(search_gw, "pump")
    assert await search_gw.run_query("notes:find", {"text": "pump"}) == ["pump"]


async def test_filter_fields_are_equalities_missing_included(search_gw) -> None:
    await _add(search_gw, "pump a", site="north", n=1.0)
    await _add(search_gw, "pump b", site="south", n=2.0)
    await _add(search_gw, "pump c")
    q = search_gw.run_query
    assert await q("notes:find", {"text": "pump", "eq": {"site": "north"}}) == ["pump a"]
    assert await q("notes:find", {"text": "pump", "eq": {"n": 2.0}}) == ["pump b"]
    assert await q("notes:find", {"text": "pump", "eq": {"site": "south", "n": 1.0}}) == []
    assert await q("notes:find", {"text": "pump", "eq": {"site": None}}) == []
    assert await q("notes:filtered", {"text": "pump"}) == ["pump b"]
    assert await q("notes:missing_site", {"text": "pump"}) == ["pump c"]  # eq(f, undefined)


async def test_relevance_orders_results_and_ties_are_newest_first(search_gw) -> None:
    # BM25: more occurrences first, then shorter documents; "a b" and "a c" score the
    # same, and the newer of the two comes first.
    await _add(search_gw, "a", "a a", "a a a a", "a b", "a c")
    assert await search_gw.run_query("notes:find", {"text": "a"}) == [
        "a a a a",
        "a a",
        "a",
        "a c",
        "a b",
    ]
    assert await search_gw.run_query("notes:first", {"text": "b"}) == "a b"
    assert await search_gw.run_query("notes:take", {"text": "a", "n": 2}) == ["a a a a", "a a"]


async def test_more_than_1024_results_is_an_error_unless_taken(search_gw) -> None:
    await search_gw.run_mutation("notes:add_many", {"docs": [{"body": "pump"}] * 1030})
    assert len(await search_gw.run_query("notes:take", {"text": "pump", "n": 1024})) == 1024
    failed = await search_gw.call("query", "notes:find", {"text": "pump"})
    assert "matched more than 1024 documents" in failed.error_message
    await search_gw.run_mutation("notes:add_many", {"docs": [{"body": "valve"}] * 3})
    assert len(await search_gw.run_query("notes:find", {"text": "valve"})) == 3


async def test_pages_walk_the_ranked_list(search_gw) -> None:
    bodies = [("w " * i).strip() for i in range(1, 8)]
    await _add(search_gw, *bodies)
    everything = await search_gw.run_query("notes:find", {"text": "w"})
    seen, cursor = [], None
    while True:
        page = await search_gw.run_query(
            "notes:page", {"text": "w", "opts": {"numItems": 3, "cursor": cursor}}
        )
        seen += [d["body"] for d in page["page"]]
        if page["isDone"]:
            break
        cursor = page["continueCursor"]
    assert seen == everything
    failed = await search_gw.call(
        "query", "notes:page", {"text": "other", "opts": {"numItems": 3, "cursor": cursor}}
    )
    assert failed.error_message


@pytest.mark.parametrize(
    ("fn", "args", "text"),
    [
        ("notes:wrong_field", {}, "uses the field 'site', but the index searches 'body'"),
        ("notes:wrong_filter", {}, "filters on 'body', which is not one of its filter fields"),
        ("notes:missing_index", {}, "IndexNotFoundError: Index notes.nope not found."),
        ("notes:ordered", {"text": "x"}, "order() cannot be used with with_search_index()"),
        ("notes:find", {"text": " ".join("t" * 17)}, "too many terms: 17 > maximum 16"),
    ],
)
async def test_refusals_name_the_problem(search_gw, fn, args, text) -> None:
    failed = await search_gw.call("query", fn, args)
    assert text in failed.error_message


async def test_writes_keep_the_index_in_step(search_gw) -> None:
    (doc_id,) = await _add(search_gw, "pump failure")
    await search_gw.run_mutation("notes:patch", {"id": doc_id, "fields": {"body": "valve leak"}})
    assert await search_gw.run_query("notes:find", {"text": "pump"}) == []
    assert await search_gw.run_query("notes:find", {"text": "leak"}) == ["valve leak"]
    await search_gw.run_mutation("notes:remove", {"id": doc_id})
    assert await search_gw.run_query("notes:find", {"text": "leak"}) == []


async def test_a_failed_mutation_leaves_the_index_unchanged(search_gw) -> None:
    failed = await search_gw.call("mutation", "notes:add_then_fail", {"body": "ghost"})
    assert failed.error_message
    assert await search_gw.run_query("notes:find", {"text": "ghost"}) == []
    await _add(search_gw, "kept")
    fts = f"fts_{search_gw.store.catalog.by_name['notes'].search['search_body'].index_id}"

    def rows(tx):
        return [
            tx.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in (fts, fts + "_docs")
        ]

    counts, _ts = await search_gw.store.read(rows)
    assert counts == [1, 1]


READSET_NOTES = """
    from gateway import mutation, query

    @mutation
    async def add(ctx, args):
        return await ctx.db.insert("notes", args)

    @mutation
    async def patch(ctx, args):
        await ctx.db.patch("notes", args["id"], args["fields"])

    @mutation
    async def add_and_find(ctx, args):
        await ctx.db.insert("notes", args)
        rows = await ctx.db.query("notes").with_search_index(
            "search_body", lambda q: q.search("body", args["body"])).collect()
        return [r["body"] for r in rows]

    @query
    async def north(ctx, args):
        return await ctx.db.query("notes").with_search_index(
            "search_body", lambda q: q.search("body", "pump").eq("site", "north")).take(5)

"""


async def _search_commit_keys(gw: Gateway, path: str, args: dict) -> list[tuple[int, bytes]]:
    seen: list = []
    unsubscribe = gw.store.write_log.subscribe(seen.extend)
    try:
        await gw.run_mutation(path, args)
    finally:
        unsubscribe()
    return [key for commit in seen for key in commit.changed_keys]


async def test_read_sets_follow_what_can_change_a_result(make_app, tmp_path) -> None:
    app = make_app(schema=SEARCH_SCHEMA, notes=READSET_NOTES)
    async with Gateway.open(app, tmp_path / "d") as gw:
        north_id = await gw.run_mutation("notes:add", {"body": "pump", "site": "north", "n": 1.0})
        unread_id = await gw.run_mutation("notes:add", {"body": "valve", "site": "east"})
        north = (await gw.call("query", "notes:north", {})).read_set
        assert north is not None
        # Any write FTS5 ranks reruns it, even outside its filter: BM25 statistics are
        # index-wide, so such a write can reorder what it returns.
        south = await _search_commit_keys(gw, "notes:add", {"body": "pump", "site": "south"})
        assert north.intersects(south)
        retexted = await _search_commit_keys(
            gw, "notes:patch", {"id": unread_id, "fields": {"body": "valve leak"}}
        )
        assert north.intersects(retexted)
        # A field FTS5 does not hold ("note": neither searched nor a filter field), of a
        # document it returned: the point read of that document.
        other = await _search_commit_keys(
            gw, "notes:patch", {"id": north_id, "fields": {"note": "x"}}
        )
        assert north.intersects(other)
        # The same on a document it never read: neither ranking nor result moves.
        unread = await _search_commit_keys(
            gw, "notes:patch", {"id": unread_id, "fields": {"note": "y"}}
        )
        assert not north.intersects(unread)
        # A filter field of a document it never read: ranked by FTS5, so it reruns.
        refiltered = await _search_commit_keys(
            gw, "notes:patch", {"id": unread_id, "fields": {"n": 5.0}}
        )
        assert north.intersects(refiltered)
        # A document that is not in the index (no string body) changes nothing.
        outside = await _search_commit_keys(gw, "notes:add", {"body": 5.0, "site": "north"})
        assert not north.intersects(outside)


async def test_a_mutation_searches_its_own_writes(make_app, tmp_path) -> None:
    app = make_app(schema=SEARCH_SCHEMA, notes=READSET_NOTES)
    async with Gateway.open(app, tmp_path / "d") as gw:
        assert await gw.run_mutation("notes:add_and_find", {"body": "fresh pump"}) == ["fresh pump"]


TERMINAL_NOTES = """
    from gateway import query

    def _q(ctx, text):
        return ctx.db.query("notes").with_search_index("search_body", lambda q: q.search("body", text))

    @query
    async def unique(ctx, args):
        doc = await _q(ctx, args["text"]).unique()
        return None if doc is None else doc["body"]

    @query
    async def iterate(ctx, args):
        return [doc["body"] async for doc in _q(ctx, args["text"])]

    @query
    async def collect(ctx, args):
        return [doc["body"] for doc in await _q(ctx, args["text"]).collect()]
"""


async def test_unique_iteration_and_relevance_of_more_terms(make_app, tmp_path) -> None:
    app = make_app(schema=SEARCH_SCHEMA, notes=SEARCH_NOTES, terms=TERMINAL_NOTES)
    async with Gateway.open(app, tmp_path / "d") as gw:
        # Same length, so only what matches decides: both terms beat one, a rare term
        # beats a common one.
        await _add(gw, "pump zeta one", "pump valve one", "zeta valve one", "pump zeta two")
        await _add(gw, *["pump filler words"] * 6)
        ranked = await gw.run_query("terms:collect", {"text": "valve pump"})
        assert ranked[0] == "pump valve one"
        assert ranked[1] == "zeta valve one"  # "valve" is rarer than "pump"
        assert await gw.run_query("terms:iterate", {"text": "valve pump"}) == ranked
        assert await gw.run_query("terms:unique", {"text": "two"}) == "pump zeta two"
        assert await gw.run_query("terms:unique", {"text": "nothing"}) is None
        failed = await gw.call("query", "terms:unique", {"text": "valve"})
        assert "unique() query returned more than one result" in failed.error_message
