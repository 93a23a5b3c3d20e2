"""``readings:series``: numbers of a device's recent documents over time, for a chart.

Generic on purpose: any table, any index, an optional equality on the index's first
field (the device), the field that holds the time, which fields to plot. The newest
``limit`` documents are read through the index (so the read set, and the reruns, are
that device's range only) and returned oldest first.
"""

from __future__ import annotations

import math
from typing import Any, Final

from gateway.errors import QueryError
from gateway.runtime.functions import RegisteredFunction
from gateway.schema import v
from gateway.values import Int64

SERIES_PATH: Final = "_system/dashboard/readings:series"
DEFAULT_LIMIT: Final = 200
MAX_LIMIT: Final = 2000
_ARGS: Final = {
    "table": v.string(),
    "index": v.string(),
    "value": v.optional(v.any()),
    "timeField": v.optional(v.string()),
    "fields": v.optional(v.array(v.string())),
    "limit": v.optional(v.float64()),
}


async def _series(ctx: Any, args: dict[str, Any]) -> dict[str, Any]:
    table, index = args["table"], args["index"]
    time_field = args.get("timeField", "_creationTime")
    limit = int(min(max(args.get("limit", DEFAULT_LIMIT), 1), MAX_LIMIT))
    source = ctx.db.system if table.startswith("_") else ctx.db
    query = source.query(table)
    field = _first_field(ctx, table, index) if "value" in args else None
    if field is not None:
        query = query.with_index(index, lambda q: q.eq(field, args["value"]))
    else:
        query = query.with_index(index)
    docs = list(reversed(await query.order("desc").take(limit)))
    fields = args.get("fields") or _numeric_fields(docs, time_field)
    points = []
    for doc in docs:
        t = _number(doc.get(time_field))
        if t is None:
            continue
        values = {f: n for f in fields if (n := _number(doc.get(f))) is not None}
        points.append({"t": t, "values": values})
    return {"fields": fields, "points": points}


def _first_field(ctx: Any, table: str, index: str) -> str | None:
    """The field ``value`` is compared with; None when there is no such index (the
    query itself then says so, in its own words)."""
    info = ctx._ex.tx.catalog.table(table)  # noqa: SLF001 - the index's fields
    ix = None if info is None else info.indexes.get(index)
    if ix is None:
        return None
    if not ix.fields or ix.fields[0] in ("_creationTime", "_id"):
        raise QueryError(
            f"readings:series takes `value` only with an index on a field of {table!r} "
            f"(e.g. by_device); {index!r} has none"
        )
    field: str = ix.fields[0]
    return field


def _numeric_fields(docs: list[dict[str, Any]], time_field: str) -> list[str]:
    seen: dict[str, None] = {}
    for doc in docs:
        for name, value in doc.items():
            if not name.startswith("_") and name != time_field and _number(value) is not None:
                seen[name] = None
    return sorted(seen)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Int64):
        return float(value)
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def functions() -> list[RegisteredFunction]:
    return [RegisteredFunction("query", "internal", _series, _ARGS, path=SERIES_PATH)]
