"""The data browser's writes: insert, patch, replace and delete as an admin.

Each goes through ``ctx.db`` like an app mutation, so schema validation, size and shape
limits and the ``down`` tables' refusal answer with the gateway's own words. System
tables stay read-only: ``ctx.db.insert`` refuses them by name, and a patch, replace or
delete of a system document by id is refused here with the same text.
"""

from __future__ import annotations

from typing import Any, Final

from gateway.errors import InvalidIdError, QueryError
from gateway.runtime.functions import RegisteredFunction
from gateway.schema import v
from gateway.values import UNSET, decode_id

INSERT_PATH: Final = "_system/dashboard/documents:insert"
PATCH_PATH: Final = "_system/dashboard/documents:patch"
REPLACE_PATH: Final = "_system/dashboard/documents:replace"
DELETE_PATH: Final = "_system/dashboard/documents:delete"
MAX_DELETE: Final = 1000  # ids per delete call: one mutation's write budget stays bounded


async def _insert(ctx: Any, args: dict[str, Any]) -> str:
    new_id: str = await ctx.db.insert(args["table"], args["document"])
    return new_id


async def _patch(ctx: Any, args: dict[str, Any]) -> None:
    doc_id = _user_document(ctx, args["id"])
    fields = args["fields"]
    if not isinstance(fields, dict):
        raise QueryError("patch takes `fields`: an object of the fields to change")
    changes = dict(fields) | dict.fromkeys(args.get("unset") or [], UNSET)
    await ctx.db.patch(doc_id, changes)


async def _replace(ctx: Any, args: dict[str, Any]) -> None:
    await ctx.db.replace(_user_document(ctx, args["id"]), args["document"])


async def _delete(ctx: Any, args: dict[str, Any]) -> float:
    ids = args["ids"]
    if len(ids) > MAX_DELETE:
        raise QueryError(f"delete takes at most {MAX_DELETE} ids per call, got {len(ids)}")
    for doc_id in ids:
        await ctx.db.delete(_user_document(ctx, doc_id))
    return float(len(ids))


def _user_document(ctx: Any, doc_id: str) -> str:
    """``doc_id``, refused with the gateway's text when it names a system table's document."""
    try:
        number, _ = decode_id(doc_id)
    except (InvalidIdError, TypeError):  # ctx.db words the error for a malformed id
        return doc_id
    table = ctx._ex.tx.catalog.table_name(number)  # noqa: SLF001 - below ctx.db
    if table is not None and table.startswith("_"):
        raise QueryError(
            f"System tables (prefixed with `_`) are read-only: cannot write to {table}"
        )
    return doc_id


def functions() -> list[RegisteredFunction]:
    """The four admin mutations."""
    return [
        RegisteredFunction(
            "mutation",
            "internal",
            _insert,
            {"table": v.string(), "document": v.any()},
            path=INSERT_PATH,
        ),
        RegisteredFunction(
            "mutation",
            "internal",
            _patch,
            {"id": v.string(), "fields": v.any(), "unset": v.optional(v.array(v.string()))},
            path=PATCH_PATH,
        ),
        RegisteredFunction(
            "mutation",
            "internal",
            _replace,
            {"id": v.string(), "document": v.any()},
            path=REPLACE_PATH,
        ),
        RegisteredFunction(
            "mutation", "internal", _delete, {"ids": v.array(v.string())}, path=DELETE_PATH
        ),
    ]
