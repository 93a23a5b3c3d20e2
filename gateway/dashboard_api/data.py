"""The data browser's queries: tables with their counts, a page of documents, one document.

``tables:list`` answers from ``TableCounts`` (memory) and records a read of every table's
whole ``by_creation_time`` range and of the catalog, so the sync engine reruns it on any
insert, delete or new table, and each rerun costs a walk over the tables, never over
their documents. ``documents:page`` is an ordinary ``with_index`` query, so its errors and
its live pagination are those of app code.
"""

from __future__ import annotations

from typing import Any, Final

from gateway.dashboard_api.counts import TableCounts
from gateway.runtime.functions import RegisteredFunction
from gateway.runtime.index_range import FULL_RANGE
from gateway.schema import pagination_opts, v
from gateway.store import BY_CREATION_TIME, TableInfo
from gateway.store.transaction import CATALOG_INDEX_ID

TABLES_PATH: Final = "_system/dashboard/tables:list"
PAGE_PATH: Final = "_system/dashboard/documents:page"
GET_PATH: Final = "_system/dashboard/documents:get"

_OPS: Final = ("eq", "gt", "gte", "lt", "lte")
_RANGE_ITEM: Final = v.object(
    {"op": v.union(*(v.literal(op) for op in _OPS)), "field": v.string(), "value": v.any()}
)
_PAGE_ARGS: Final = {
    "table": v.string(),
    "index": v.optional(v.string()),
    "order": v.optional(v.union(v.literal("asc"), v.literal("desc"))),
    "range": v.optional(v.array(_RANGE_ITEM)),
    "paginationOpts": pagination_opts,
}


def functions(counts: TableCounts) -> list[RegisteredFunction]:
    """The data browser's three queries."""

    async def tables(ctx: Any, args: dict[str, Any]) -> list[dict[str, Any]]:
        ex = ctx._ex  # noqa: SLF001 - the catalog and the read set are below ctx.db
        catalog = ex.tx.catalog
        ex.read_set.record(CATALOG_INDEX_ID, FULL_RANGE).exhausted = True
        declared = getattr(ex.schema, "tables", None) or {}
        rows = []
        for name in sorted(catalog.by_name, key=lambda n: (n.startswith("_"), n)):
            info = catalog.by_name[name]
            scan = ex.read_set.record(info.indexes[BY_CREATION_TIME].index_id, FULL_RANGE)
            scan.exhausted = True
            rows.append(_table_row(info, counts.count(name), declared.get(name)))
        return rows

    return [
        RegisteredFunction("query", "internal", tables, {}, path=TABLES_PATH),
        RegisteredFunction("query", "internal", _page, _PAGE_ARGS, path=PAGE_PATH),
        RegisteredFunction("query", "internal", _get, {"id": v.string()}, path=GET_PATH),
    ]


def _table_row(info: TableInfo, count: int | None, definition: Any) -> dict[str, Any]:
    validator = getattr(definition, "document_validator", None)
    return {
        "name": info.name,
        "system": info.name.startswith("_"),
        "count": None if count is None else float(count),
        "replication": info.replication,
        "indexes": [
            {"name": ix.name, "fields": list(ix.fields)}
            for ix in sorted(info.indexes.values(), key=lambda ix: ix.name)
        ],
        "searchIndexes": [
            {"name": s.name, "searchField": s.search_field, "filterFields": list(s.filter_fields)}
            for s in sorted(info.search.values(), key=lambda s: s.name)
        ],
        "schema": None if validator is None else validator.to_json(),
    }


async def _page(ctx: Any, args: dict[str, Any]) -> Any:
    table = args["table"]
    source = ctx.db.system if table.startswith("_") else ctx.db
    steps = args.get("range") or []
    query = source.query(table).with_index(
        args.get("index", BY_CREATION_TIME), lambda q: _apply_range(q, steps)
    )
    return await query.order(args.get("order", "desc")).paginate(args["paginationOpts"])


def _apply_range(q: Any, steps: list[dict[str, Any]]) -> Any:
    for step in steps:
        q = getattr(q, step["op"])(step["field"], step["value"])
    return q


async def _get(ctx: Any, args: dict[str, Any]) -> Any:
    # ``db.get(id)`` of any table, system ones too; a malformed id gets its own error.
    return await ctx.db.get(args["id"])
