"""The data browser's functions: tables with counts, pages by index range, one document,
admin edits with the gateway's own validation errors, refusals for non-admins."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dashboard_api.dashboard_api_kit import APP, FIRST_PAGE, admin, failure, refused

from gateway import Gateway, Settings

PATHS = [
    ("query", "_system/dashboard/tables:list", {}),
    ("query", "_system/dashboard/documents:page", {"table": "notes", "paginationOpts": FIRST_PAGE}),
    ("query", "_system/dashboard/documents:get", {"id": "x"}),
    ("mutation", "_system/dashboard/documents:insert", {"table": "notes", "document": {}}),
    ("mutation", "_system/dashboard/documents:delete", {"ids": []}),
]


async def counted(gw: Gateway) -> dict[str, Any]:
    """The table list once the first count is in, by table name."""
    for _ in range(500):
        rows = await admin(gw, "query", "_system/dashboard/tables:list")
        if all(row["count"] is not None for row in rows):
            return {row["name"]: row for row in rows}
        await asyncio.sleep(0.01)
    raise AssertionError("the tables were never counted")


async def add(gw: Gateway, device: str, celsius: float) -> str:
    new_id: str = await gw.run_mutation("readings:add", {"device": device, "celsius": celsius})
    return new_id


async def test_tables_list_counts_user_and_system_tables(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    app = make_app(**APP)
    async with Gateway.open(app, tmp_path / "data", Settings()) as gw:
        for i in range(3):
            await add(gw, "a", float(i))
    # Reopened: the counts come from the store's index rows, then follow the commits.
    async with Gateway.open(app, tmp_path / "data", Settings()) as gw:
        tables = await counted(gw)
        assert tables["readings"]["count"] == 3.0
        assert tables["notes"]["count"] == 0.0
        names = list(tables)
        assert names.index("readings") < names.index("_scheduled_functions")
        readings = tables["readings"]
        assert readings["system"] is False and readings["replication"] == "local"
        by_device = {ix["name"]: ix["fields"] for ix in readings["indexes"]}
        assert by_device["by_device"] == ["device", "_creationTime", "_id"]
        assert readings["schema"]["type"] == "object"
        assert readings["schema"]["value"]["seq"]["optional"] is True
        assert tables["_scheduled_functions"]["system"] is True
        assert tables["_scheduled_functions"]["schema"] is None
        doc_id = await add(gw, "b", 1.0)
        await gw.run_mutation("readings:later")
        tables = await counted(gw)
        assert tables["readings"]["count"] == 4.0
        assert tables["_scheduled_functions"]["count"] == 1.0
        await admin(gw, "mutation", "_system/dashboard/documents:delete", {"ids": [doc_id]})
        assert (await counted(gw))["readings"]["count"] == 3.0


async def test_a_page_by_index_range_and_order(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    async with Gateway.open(make_app(**APP), tmp_path / "data", Settings()) as gw:
        for device, celsius in [("a", 1.0), ("b", 2.0), ("a", 3.0), ("a", 4.0)]:
            await add(gw, device, celsius)
        page = await admin(
            gw,
            "query",
            "_system/dashboard/documents:page",
            {"table": "readings", "paginationOpts": {"numItems": 2, "cursor": None}},
        )
        assert [d["celsius"] for d in page["page"]] == [4.0, 3.0] and not page["isDone"]
        args = {
            "table": "readings",
            "index": "by_device",
            "order": "asc",
            "range": [{"op": "eq", "field": "device", "value": "a"}],
            "paginationOpts": FIRST_PAGE,
        }
        page = await admin(gw, "query", "_system/dashboard/documents:page", args)
        assert [d["celsius"] for d in page["page"]] == [1.0, 3.0, 4.0] and page["isDone"]
        first = page["page"][0]["_creationTime"]
        args["range"] = [
            {"op": "eq", "field": "device", "value": "a"},
            {"op": "gt", "field": "_creationTime", "value": first},
        ]
        page = await admin(gw, "query", "_system/dashboard/documents:page", args)
        assert [d["celsius"] for d in page["page"]] == [3.0, 4.0]
        system = await admin(
            gw,
            "query",
            "_system/dashboard/documents:page",
            {"table": "_cron_jobs", "paginationOpts": FIRST_PAGE},
        )
        assert [d["name"] for d in system["page"]] == ["tick"]


async def test_bad_pages_get_the_gateways_own_errors(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    async with Gateway.open(make_app(**APP), tmp_path / "data", Settings()) as gw:
        page = "_system/dashboard/documents:page"
        wrong_field = await failure(
            gw,
            "query",
            page,
            {
                "table": "readings",
                "index": "by_device",
                "range": [{"op": "eq", "field": "celsius", "value": 1.0}],
                "paginationOpts": FIRST_PAGE,
            },
        )
        assert "celsius" in wrong_field and "by_device" in wrong_field
        no_index = await failure(
            gw, "query", page, {"table": "readings", "index": "nope", "paginationOpts": FIRST_PAGE}
        )
        assert "nope" in no_index
        bad_op = await failure(
            gw,
            "query",
            page,
            {
                "table": "readings",
                "range": [{"op": "like", "field": "device", "value": "a"}],
                "paginationOpts": FIRST_PAGE,
            },
        )
        assert bad_op.startswith("ArgumentValidationError") and "like" in bad_op
        missing = await failure(gw, "query", page, {"table": "readings"})
        assert "paginationOpts" in missing


async def test_get_insert_patch_replace_delete(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    async with Gateway.open(make_app(**APP), tmp_path / "data", Settings()) as gw:
        base = "_system/dashboard/documents:"
        new_id = await admin(
            gw,
            "mutation",
            base + "insert",
            {"table": "readings", "document": {"device": "a", "celsius": 1.5, "note": "x"}},
        )
        doc = await admin(gw, "query", base + "get", {"id": new_id})
        assert doc["device"] == "a" and doc["celsius"] == 1.5
        await admin(
            gw,
            "mutation",
            base + "patch",
            {"id": new_id, "fields": {"celsius": 2.5}, "unset": ["note"]},
        )
        doc = await admin(gw, "query", base + "get", {"id": new_id})
        assert doc["celsius"] == 2.5 and "note" not in doc
        await admin(
            gw,
            "mutation",
            base + "replace",
            {"id": new_id, "document": {"_id": new_id, "device": "b", "celsius": 3.0}},
        )
        doc = await admin(gw, "query", base + "get", {"id": new_id})
        assert (doc["device"], doc["celsius"]) == ("b", 3.0)
        assert await admin(gw, "mutation", base + "delete", {"ids": [new_id]}) == 1.0
        assert await admin(gw, "query", base + "get", {"id": new_id}) is None


async def test_writes_are_refused_in_the_gateways_words(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    async with Gateway.open(make_app(**APP), tmp_path / "data", Settings()) as gw:
        base = "_system/dashboard/documents:"
        bad = await failure(
            gw,
            "mutation",
            base + "insert",
            {"table": "readings", "document": {"device": "a", "celsius": "hot"}},
        )
        assert "does not match the schema" in bad and "celsius" in bad
        doc_id = await add(gw, "a", 1.0)
        bad = await failure(
            gw, "mutation", base + "patch", {"id": doc_id, "fields": {"extra": True}}
        )
        assert "does not match the schema" in bad and "extra" in bad
        system = await failure(
            gw, "mutation", base + "insert", {"table": "_dead_letters", "document": {}}
        )
        assert "System tables" in system and "read-only" in system
        job = await gw.run_mutation("readings:later")
        system = await failure(gw, "mutation", base + "delete", {"ids": [job]})
        assert "System tables" in system and "_scheduled_functions" in system
        missing = await failure(gw, "mutation", base + "delete", {"ids": [doc_id, doc_id]})
        assert "nonexistent document" in missing
        assert await admin(gw, "query", base + "get", {"id": doc_id}) is not None  # all or none
        malformed = await failure(gw, "query", base + "get", {"id": "not-an-id"})
        assert "Invalid argument `id`" in malformed


@pytest.mark.parametrize(("kind", "path", "args"), PATHS)
async def test_non_admins_are_refused(
    make_app: Callable[..., Path], tmp_path: Path, kind: str, path: str, args: dict[str, Any]
) -> None:
    async with Gateway.open(make_app(**APP), tmp_path / "data", Settings()) as gw:
        message = await refused(gw, kind, path, args)
        assert message == f"Could not find public function for '{path}'."
