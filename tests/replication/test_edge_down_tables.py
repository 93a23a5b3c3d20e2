"""``.replicate("down")`` tables: the upstream owns them, so an edge refuses local writes;
a hub (``hub = true``), where they are owned, takes them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gateway import Gateway, Settings
from gateway.errors import FunctionError

SCHEMA = """
from gateway import define_schema, define_table, v

schema = define_schema({
    "config": define_table({"rate": v.float64()}).replicate("down"),
})
"""
FUNCTIONS = """
from gateway import mutation, query

@mutation
async def put(ctx, args):
    return await ctx.db.insert("config", {"rate": args["rate"]})

@mutation
async def change(ctx, args):
    await ctx.db.patch(args["id"], {"rate": args["rate"]})

@mutation
async def drop(ctx, args):
    await ctx.db.delete(args["id"])

@query
async def rates(ctx, args):
    return [d["rate"] for d in await ctx.db.query("config").collect()]
"""


def _app(root: Path) -> Path:
    (root / "convex").mkdir(parents=True)
    (root / "convex" / "schema.py").write_text(textwrap.dedent(SCHEMA))
    (root / "convex" / "config.py").write_text(textwrap.dedent(FUNCTIONS))
    return root


async def test_an_edge_refuses_local_writes_to_a_down_table(tmp_path: Path) -> None:
    app = _app(tmp_path / "app")
    async with Gateway.open(app, tmp_path / "hub", Settings(hub=True)) as hub:
        doc_id = await hub.run_mutation("config:put", {"rate": 1.0})
        await hub.run_mutation("config:change", {"id": doc_id, "rate": 2.0})
        assert await hub.run_query("config:rates", {}) == [2.0]
        await hub.run_mutation("config:drop", {"id": doc_id})
    async with Gateway.open(app, tmp_path / "edge") as edge:
        with pytest.raises(FunctionError, match=r'"config" is replicated down.*refused'):
            await edge.run_mutation("config:put", {"rate": 1.0})
        assert await edge.run_query("config:rates", {}) == []


async def test_an_edge_refuses_patches_and_deletes_of_pulled_documents(tmp_path: Path) -> None:
    app = _app(tmp_path / "app")
    async with Gateway.open(app, tmp_path / "edge") as edge:
        # As the downlink will: straight into the store, not through a mutation.
        doc_id, _ = await edge.store.write(lambda tx: tx.insert("config", {"rate": 1.0}, 1.0))
        for path, args in (("config:change", {"rate": 3.0}), ("config:drop", {})):
            with pytest.raises(FunctionError, match="replicated down"):
                await edge.run_mutation(path, {"id": doc_id, **args})
        assert await edge.run_query("config:rates", {}) == [1.0]
