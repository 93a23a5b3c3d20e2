"""Search indexes follow the schema: built over existing documents when added, rebuilt
when redefined, dropped (FTS5 tables and all) when removed, kept across restarts."""

from __future__ import annotations

import textwrap
from pathlib import Path

from gateway import Gateway

PLAIN = """
    from gateway import define_schema, define_table, v
    schema = define_schema({"logs": define_table({"msg": v.string(), "dev": v.string()})})
"""
WITH_SEARCH = """
    from gateway import define_schema, define_table, v
    schema = define_schema({"logs": define_table({"msg": v.string(), "dev": v.string()})
        .search_index("by_msg", search_field="msg")})
"""
WITH_FILTER = """
    from gateway import define_schema, define_table, v
    schema = define_schema({"logs": define_table({"msg": v.string(), "dev": v.string()})
        .search_index("by_msg", search_field="msg", filter_fields=["dev"])})
"""
LOGS = """
    from gateway import mutation, query

    @mutation
    async def add(ctx, args):
        return await ctx.db.insert("logs", args)

    @query
    async def find(ctx, args):
        def build(q):
            q = q.search("msg", args["text"])
            return q.eq("dev", args["dev"]) if "dev" in args else q
        rows = await ctx.db.query("logs").with_search_index("by_msg", build).collect()
        return sorted(r["msg"] for r in rows)
"""


def _schema_write(app: Path, source: str) -> None:
    (app / "convex" / "schema.py").write_text(textwrap.dedent(source))


async def _fts_tables(gw: Gateway) -> list[str]:
    def names(tx) -> list[str]:
        rows = tx.conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'fts_%'")
        return sorted(r[0] for r in rows)

    result, _ts = await gw.store.read(names)
    return result


async def test_search_index_lifecycle_follows_the_schema(make_app, tmp_path) -> None:
    app = make_app(schema=PLAIN, logs=LOGS)
    data = tmp_path / "d"
    async with Gateway.open(app, data) as gw:
        for msg, dev in [("pump fail", "d1"), ("pump ok", "d2"), ("valve", "d1")]:
            await gw.run_mutation("logs:add", {"msg": msg, "dev": dev})
        failed = await gw.call("query", "logs:find", {"text": "pump"})
        assert "IndexNotFoundError: Index logs.by_msg not found." in failed.error_message

    _schema_write(app, WITH_SEARCH)
    async with Gateway.open(app, data) as gw:
        assert await gw.run_query("logs:find", {"text": "pump"}) == ["pump fail", "pump ok"]
        await gw.run_mutation("logs:add", {"msg": "pump new", "dev": "d1"})

    async with Gateway.open(app, data) as gw:  # a restart keeps it, new rows included
        assert await gw.run_query("logs:find", {"text": "pump"}) == [
            "pump fail",
            "pump new",
            "pump ok",
        ]

    _schema_write(app, WITH_FILTER)  # redefined: dropped and rebuilt with the filter
    async with Gateway.open(app, data) as gw:
        ix = gw.store.catalog.by_name["logs"].search["by_msg"]
        assert ix.filter_fields == ("dev",)
        assert await gw.run_query("logs:find", {"text": "pump", "dev": "d1"}) == [
            "pump fail",
            "pump new",
        ]
        tables = await _fts_tables(gw)
        assert {f"fts_{ix.index_id}", f"fts_{ix.index_id}_docs"} <= set(tables)
        assert all(t.startswith(f"fts_{ix.index_id}") for t in tables)  # the old one is gone

    _schema_write(app, PLAIN)
    async with Gateway.open(app, data) as gw:
        assert gw.store.catalog.by_name["logs"].search == {}
        assert await _fts_tables(gw) == []
