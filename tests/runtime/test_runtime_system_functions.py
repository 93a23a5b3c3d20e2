"""Built-in admin functions: ``_system/cli/tableData`` pages any table, admins only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gateway import Gateway, Settings

NOTES = """
from gateway import mutation, query, v

@mutation(args={"text": v.string()})
async def add(ctx, args):
    await ctx.db.insert("notes", args)

@query(args={})
async def dead(ctx, args):
    return await ctx.db.system.query("_dead_letters").collect()
"""


async def test_table_data_pages_user_and_system_tables_for_admins(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    app = make_app(notes=NOTES)
    async with Gateway.open(app, tmp_path / "data", Settings()) as gw:
        for text in ("a", "b", "c"):
            await gw.run_mutation("notes:add", {"text": text})
        page = await gw.run_query(
            "_system/cli/tableData.js",
            {"table": "notes", "order": "desc", "paginationOpts": {"numItems": 2, "cursor": None}},
        )
        assert [d["text"] for d in page["page"]] == ["c", "b"] and not page["isDone"]
        scheduled = await gw.run_query(
            "_system/cli/tableData.js",
            {"table": "_scheduled_functions", "paginationOpts": {"numItems": 5, "cursor": None}},
        )
        assert scheduled["page"] == [] and scheduled["isDone"]
        refused = await gw.call("query", "_system/cli/tableData", {"table": "notes"}, admin=False)
        assert not refused.ok and "Could not find public function" in refused.error_message
