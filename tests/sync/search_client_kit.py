"""The search app both official-client search tests serve (npm and PyPI ``ConvexClient``)."""

from __future__ import annotations

SEARCH_CLIENT_SCHEMA = """
    from gateway import define_schema, define_table, v
    schema = define_schema({
        "notes": define_table({"body": v.string(), "site": v.string(), "level": v.float64()})
            .search_index("search_body", search_field="body", filter_fields=["site"]),
    })
"""
SEARCH_CLIENT_NOTES = """
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
