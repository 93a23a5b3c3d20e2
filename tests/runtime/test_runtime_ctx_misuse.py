"""Using a ``ctx`` member the function's kind lacks gives Convex's wording, not a Python
``AttributeError`` text (``'QueryCtx' object has no attribute 'scheduler'``)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway import Gateway

SCHEMA = """
    from gateway import define_schema, define_table, v
    schema = define_schema({"notes": define_table({"body": v.string()})})
"""

FNS = """
    from gateway import action, mutation, query

    @query
    async def schedule(ctx, args):
        await ctx.scheduler.run_after(0, "misuse:noop", {})

    @action
    async def read_db(ctx, args):
        return await ctx.db.query("notes").collect()

    @query
    async def write(ctx, args):
        op = getattr(ctx.db, args["op"])
        if args["op"] == "insert":
            await op("notes", {"body": "x"})
        else:
            await op(args["id"], {"body": "y"}) if args["op"] != "delete" else await op(args["id"])

    @query
    async def storage(ctx, args):
        if args["op"] == "generate_upload_url":
            return await ctx.storage.generate_upload_url()
        if args["op"] == "store":
            return await ctx.storage.store(b"x")
        return await ctx.storage.delete(args["id"])

    @query
    async def call_mutation(ctx, args):
        return await ctx.run_mutation("misuse:noop", {})

    @query
    async def call_action(ctx, args):
        return await ctx.run_action("misuse:noop_action", {})

    @mutation
    async def call_action_from_mutation(ctx, args):
        return await ctx.run_action("misuse:noop_action", {})

    @query
    async def probe(ctx, args):
        return [hasattr(ctx, "scheduler"), hasattr(ctx, "db")]

    @action
    async def probe_action(ctx, args):
        return [hasattr(ctx, "db"), hasattr(ctx, "scheduler")]

    @query
    async def typo(ctx, args):
        return ctx.sheduler

    @mutation
    async def noop(ctx, args):
        return await ctx.db.insert("notes", {"body": "n"})

    @action
    async def noop_action(ctx, args):
        return None
"""


@pytest.fixture
async def gw(make_app: Any, tmp_path: Any) -> Any:
    async with Gateway.open(make_app(schema=SCHEMA, misuse=FNS), tmp_path / "d") as gateway:
        yield gateway


async def refused(gw: Gateway, kind: str, path: str, args: dict[str, Any] | None = None) -> str:
    result = await gw.call(kind, path, args or {})
    assert not result.ok, result
    return result.error_message.splitlines()[0]  # type: ignore[no-any-return]


async def test_scheduler_in_a_query(gw: Gateway) -> None:
    assert await refused(gw, "query", "misuse:schedule") == (
        "Uncaught Error: Can't use ctx.scheduler in queries. "
        "Please consider using a mutation or an action."
    )


async def test_db_in_an_action(gw: Gateway) -> None:
    assert await refused(gw, "action", "misuse:read_db") == (
        "Uncaught Error: Can't use ctx.db in actions. "
        "Please consider using ctx.run_query or ctx.run_mutation."
    )


@pytest.mark.parametrize("op", ["insert", "patch", "replace", "delete"])
async def test_writes_from_a_query(gw: Gateway, op: str) -> None:
    note = await gw.run_mutation("misuse:noop")
    assert await refused(gw, "query", "misuse:write", {"op": op, "id": note}) == (
        f"Uncaught Error: Can't use ctx.db.{op}() in queries. Please consider using a mutation."
    )


@pytest.mark.parametrize("op", ["generate_upload_url", "store", "delete"])
async def test_storage_writes_from_a_query(gw: Gateway, op: str) -> None:
    message = await refused(gw, "query", "misuse:storage", {"op": op, "id": "x"})
    assert message == (
        f"Uncaught Error: Can't use ctx.storage.{op}() in queries. "
        "Please consider using a mutation or an action."
    )


async def test_nested_calls_a_query_or_mutation_cannot_make(gw: Gateway) -> None:
    assert await refused(gw, "query", "misuse:call_mutation") == (
        "Uncaught Error: Cannot call a mutation function from a query function"
    )
    for kind, path in (("query", "call_action"), ("mutation", "call_action_from_mutation")):
        message = await refused(gw, kind, f"misuse:{path}")
        assert message.startswith("Uncaught Error: Cannot call an action from a query or mutation")


async def test_hasattr_still_answers_and_typos_stay_attribute_errors(gw: Gateway) -> None:
    assert await gw.run_query("misuse:probe") == [False, True]
    assert await gw.run_action("misuse:probe_action") == [False, True]
    assert await refused(gw, "query", "misuse:typo") == (
        "Uncaught AttributeError: 'QueryCtx' object has no attribute 'sheduler'"
    )
