"""Helpers of the hub tests: a hub app, a registered edge, and batches as an edge cuts them."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gateway import Gateway
from gateway.config import Settings
from gateway.replication.batch import PUSH_PATH
from gateway.replication.credentials import hash_key, registry_path, write_registry
from gateway.runtime.runtime import CallResult
from gateway.store.datadir import make_private_dir
from gateway.values import encode_id

SCHEMA = """
from gateway import define_schema, define_table, v

schema = define_schema({
    "readings": define_table({"device": v.string(), "celsius": v.float64()}),
    "notes": define_table({"text": v.string()}),
})
"""
VIEWS = """
from gateway import query

@query
async def celsius(ctx, args):
    return [d["celsius"] for d in await ctx.db.query("readings").collect()]

@query
async def marks(ctx, args):
    return await ctx.db.system.query("_replication_marks").collect()
"""
EDGE = "0f3c2a9e8b7d4c1a9e8b7d4c1a2b3c4d"
KEY = "edge-key-for-tests-0123456789abcdef0123456789"


def write_hub_app(root: Path) -> Path:
    app = root / "hubapp"
    (app / "convex").mkdir(parents=True)
    (app / "convex" / "schema.py").write_text(textwrap.dedent(SCHEMA))
    (app / "convex" / "views.py").write_text(textwrap.dedent(VIEWS))
    return app


def register(data_dir: Path, name: str = EDGE, key: str = KEY) -> None:
    """Register ``name`` with ``key`` as ``outpost gateway add`` would."""
    path = registry_path(data_dir)
    make_private_dir(data_dir)
    make_private_dir(path.parent)
    write_registry(path, {name: hash_key(key)})


@asynccontextmanager
async def hub(root: Path, **settings: Any) -> AsyncIterator[Gateway]:
    """A started hub (``hub = true``, and ``settings``) with ``EDGE`` registered."""
    data = root / "hubdata"
    register(data)
    async with Gateway.open(write_hub_app(root), data, Settings(hub=True, **settings)) as gw:
        yield gw


class Edge:
    """Makes changes and batches the way an edge's outbox numbers them."""

    def __init__(self, table_number: int, *, epoch: float = 1.0) -> None:
        self.table_number = table_number
        self.epoch = epoch
        self._next_id = 1

    def new_id(self) -> str:
        self._next_id += 1
        return encode_id(self.table_number, self._next_id.to_bytes(16, "big"))

    def batch(self, first: int, changes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        numbered = [{**c, "seq": float(first + i)} for i, c in enumerate(changes)]
        return {
            "gateway": EDGE,
            "key": KEY,
            "epoch": self.epoch,
            "first": float(first),
            "last": float(first + len(changes) - 1),
            "clockTrusted": True,
            "schema": "digest",
            "changes": numbered,
            **extra,
        }


def change(op: str, table: str, doc_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = None if body is None else {"_id": doc_id, "_creationTime": 1_700_000_000_000.5, **body}
    return {"op": op, "table": table, "id": doc_id, "ts": "1", "doc": doc}


async def push(gw: Gateway, batch: dict[str, Any]) -> CallResult:
    """Call the push as the HTTP API does for a caller with no admin key."""
    return await gw.call("mutation", PUSH_PATH, batch, admin=False)


async def documents(gw: Gateway, table: str) -> list[dict[str, Any]]:
    def read(tx: Any) -> list[dict[str, Any]]:
        info = tx.catalog.table(table)
        if info is None:
            return []
        return [doc for _k, _s, doc in tx.scan(info.indexes["by_creation_time"], b"", None)]

    docs, _ts = await gw.store.read(read)
    return docs


def number(gw: Gateway, table: str) -> int:
    info = gw.store.catalog.table(table)
    assert info is not None
    return info.number
