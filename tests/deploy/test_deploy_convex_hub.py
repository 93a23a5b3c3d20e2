"""The golden fixtures of ``deploy/convex/`` through an Outpost hub (``hub = true``): the
same answers, marks and documents as the vitest suite expects of ``outpost:push``, so
both upstream targets agree on the batch contract (gateway/replication/batch.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway import Gateway
from gateway.config import Settings
from gateway.replication.batch import PUSH_PATH
from gateway.replication.credentials import hash_key, registry_path, write_registry
from gateway.store.datadir import make_private_dir

FIXTURES = {
    path.stem: json.loads(path.read_text())
    for path in sorted(
        (Path(__file__).resolve().parents[2] / "deploy/convex/fixtures").glob("*.json")
    )
}
# No "readings" here: the hub creates it under the fixtures' edge table number.
SCHEMA = """
from gateway import define_schema, define_table, v

schema = define_schema({"notes": define_table({"text": v.string()})})
"""


def _hub_app(root: Path) -> Path:
    (root / "app" / "convex").mkdir(parents=True)
    (root / "app" / "convex" / "schema.py").write_text(SCHEMA)
    return root / "app"


async def _marks(gw: Gateway) -> list[dict[str, Any]]:
    def read(tx: Any) -> list[dict[str, Any]]:
        info = tx.catalog.table("_replication_marks")
        rows = [] if info is None else tx.scan(info.indexes["by_creation_time"], b"", None)
        return [doc for _k, _s, doc in rows]

    rows, _ts = await gw.store.read(read)
    marks = [{"gateway": r["gateway"], "epoch": r["epoch"], "applied": r["applied"]} for r in rows]
    return sorted(marks, key=lambda m: m["epoch"])


async def _documents(gw: Gateway, table: str) -> list[dict[str, Any]]:
    def read(tx: Any) -> list[dict[str, Any]]:
        info = tx.catalog.table(table)
        rows = [] if info is None else tx.scan(info.indexes["by_creation_time"], b"", None)
        return [doc for _k, _s, doc in rows]

    docs, _ts = await gw.store.read(read)
    # As outpost:push stores them on Convex: the edge's _id and _creationTime as fields.
    shaped = [
        {
            "edgeId": d["_id"],
            "edgeCreationTime": d["_creationTime"],
            **{k: v for k, v in d.items() if not k.startswith("_")},
        }
        for d in docs
    ]
    return sorted(shaped, key=lambda d: d["edgeId"])


@pytest.mark.parametrize("name", sorted(FIXTURES))
async def test_a_hub_agrees_with_the_fixture(name: str, tmp_path: Path) -> None:
    fixture = FIXTURES[name]
    data = tmp_path / "hubdata"
    make_private_dir(data)
    make_private_dir(registry_path(data).parent)
    write_registry(registry_path(data), {fixture["gateway"]: hash_key(fixture["key"])})
    async with Gateway.open(_hub_app(tmp_path), data, Settings(hub=True)) as gw:
        for i, step in enumerate(fixture["steps"]):
            result = await gw.call("mutation", PUSH_PATH, step["batch"], admin=False)
            if "error" in step:
                assert result.error_data == step["error"], f"step {i}: {result.error_message}"
            else:
                assert result.unwrap() == step["expect"], f"step {i}"
        assert await _marks(gw) == fixture["marks"]
        for table, expected in fixture["tables"].items():
            assert await _documents(gw, table) == expected, table
