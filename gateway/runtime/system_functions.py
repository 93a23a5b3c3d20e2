"""Built-in admin functions under ``_system/``: what the Convex CLI and dashboards call.

They are found only by admin callers (an admin key on the HTTP API or a sync socket, or
the gateway itself): ``Runtime.lookup`` serves ``_system/...`` paths from here when
internal functions are allowed, and never from the app.

- ``_system/cli/tableData`` ``{table, order?, paginationOpts}``: a page of any table,
  system tables (``_dead_letters``, ``_storage``, ``_scheduled_functions``) included,
  as ``npx convex data`` reads tables.
"""

from __future__ import annotations

from typing import Any, Final

from gateway.runtime.functions import RegisteredFunction
from gateway.runtime.loader import canonical_path
from gateway.schema import pagination_opts, v

PREFIX: Final = "_system/"


async def _table_data(ctx: Any, args: dict[str, Any]) -> Any:
    table = args["table"]
    source = ctx.db.system if table.startswith("_") else ctx.db
    query = source.query(table).order(args.get("order", "asc"))
    return await query.paginate(args["paginationOpts"])


_TABLE_DATA_ARGS: Final = {
    "table": v.string(),
    "order": v.optional(v.union(v.literal("asc"), v.literal("desc"))),
    "paginationOpts": pagination_opts,
}

FUNCTIONS: Final[dict[str, RegisteredFunction]] = {
    "_system/cli/tableData:default": RegisteredFunction(
        "query", "internal", _table_data, _TABLE_DATA_ARGS, path="_system/cli/tableData:default"
    ),
}


def lookup(path: str) -> RegisteredFunction | None:
    """The built-in function at ``path`` (any form the clients send), or None."""
    return FUNCTIONS.get(canonical_path(path))
