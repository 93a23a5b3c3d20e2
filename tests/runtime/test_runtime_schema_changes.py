"""Schema changes: indexes built before serving, violating documents refuse the change."""

from __future__ import annotations

import pytest

from gateway import Gateway
from gateway.errors import SchemaEnforcementError

SCHEMA_V1 = """
    from gateway import define_schema, define_table, v
    schema = define_schema({"pumps": define_table({"name": v.string(), "rpm": v.float64()})})
"""
SCHEMA_V2_INDEX = """
    from gateway import define_schema, define_table, v
    schema = define_schema({
        "pumps": define_table({"name": v.string(), "rpm": v.float64()}).index("by_rpm", ["rpm"]),
    })
"""
SCHEMA_V3_STRICTER = """
    from gateway import define_schema, define_table, v
    schema = define_schema({
        "pumps": define_table({"name": v.string(), "rpm": v.int64()}).index("by_rpm", ["rpm"]),
    })
"""
PUMPS = """
    from gateway import mutation, query, v

    @mutation
    async def add(ctx, args):
        return await ctx.db.insert("pumps", args)

    @query(args={"lo": v.float64()})
    async def fast(ctx, args):
        rows = await ctx.db.query("pumps").with_index("by_rpm", lambda q: q.gte("rpm", args["lo"])).collect()
        return [r["name"] for r in rows]
"""


def _write(app, name: str, source: str) -> None:
    import textwrap

    (app / "convex" / f"{name}.py").write_text(textwrap.dedent(source))


async def test_a_new_index_is_backfilled_before_the_app_is_served(make_app, tmp_path) -> None:
    app = make_app(schema=SCHEMA_V1, pumps=PUMPS)
    async with Gateway.open(app, tmp_path / "d") as gw:
        for name, rpm in [("a", 900.0), ("b", 1500.0), ("c", 3000.0)]:
            await gw.run_mutation("pumps:add", {"name": name, "rpm": rpm})
        failed = await gw.call("query", "pumps:fast", {"lo": 1000.0})
        assert "IndexNotFoundError: Index pumps.by_rpm not found." in failed.error_message
    _write(app, "schema", SCHEMA_V2_INDEX)
    async with Gateway.open(app, tmp_path / "d") as gw:
        assert await gw.run_query("pumps:fast", {"lo": 1000.0}) == ["b", "c"]
    # Removing it again drops it.
    _write(app, "schema", SCHEMA_V1)
    async with Gateway.open(app, tmp_path / "d") as gw:
        assert "by_rpm" not in gw.store.catalog.by_name["pumps"].indexes


async def test_a_schema_that_stored_documents_violate_is_refused_naming_the_first(
    make_app, tmp_path
) -> None:
    app = make_app(schema=SCHEMA_V2_INDEX, pumps=PUMPS)
    async with Gateway.open(app, tmp_path / "d") as gw:
        first = await gw.run_mutation("pumps:add", {"name": "a", "rpm": 900.5})
        await gw.run_mutation("pumps:add", {"name": "b", "rpm": 1.5})
    _write(app, "schema", SCHEMA_V3_STRICTER)
    with pytest.raises(SchemaEnforcementError) as caught:
        async with Gateway.open(app, tmp_path / "d"):
            pass
    assert first in str(caught.value)
    # Nothing was applied: the old schema still opens and serves the data.
    _write(app, "schema", SCHEMA_V2_INDEX)
    async with Gateway.open(app, tmp_path / "d") as gw:
        assert await gw.run_query("pumps:fast", {"lo": 0.0}) == ["b", "a"]


async def test_schema_enforcement_on_insert_patch_replace(make_app, tmp_path) -> None:
    app = make_app(
        schema=SCHEMA_V1,
        ops="""
            from gateway import mutation

            @mutation
            async def insert(ctx, args):
                return await ctx.db.insert("pumps", args["doc"])

            @mutation
            async def patch(ctx, args):
                await ctx.db.patch("pumps", args["id"], args["fields"])

            @mutation
            async def replace(ctx, args):
                await ctx.db.replace("pumps", args["id"], args["doc"])
        """,
    )
    async with Gateway.open(app, tmp_path / "d") as gw:
        bad = await gw.call("mutation", "ops:insert", {"doc": {"name": "a", "rpm": "fast"}})
        assert bad.error_message.startswith(
            'Uncaught Error: Failed to insert or update a document in table "pumps" because it '
            "does not match the schema"
        ), bad.error_message
        pump = await gw.run_mutation("ops:insert", {"doc": {"name": "a", "rpm": 1.0}})
        bad = await gw.call("mutation", "ops:patch", {"id": pump, "fields": {"extra": 1.0}})
        assert "extra" in bad.error_message
        bad = await gw.call("mutation", "ops:replace", {"id": pump, "doc": {"name": "b"}})
        assert "rpm" in bad.error_message
