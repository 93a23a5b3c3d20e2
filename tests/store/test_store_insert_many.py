"""``Transaction.insert_existing_many`` (a replication hub's bulk path) against one
``insert_existing`` per document, on random documents and indexes: the same rows, index
rows, changed keys and recorded changes."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import StoreError
from gateway.store import Store
from gateway.values import Int64, encode_id

NUMBER = 40
FIELDS = ["a", "b", "nested"]


def _random_doc(rng: random.Random, n: int) -> dict[str, Any]:
    internal = (1_700_000_000_000 + n).to_bytes(6, "big") + rng.randbytes(10)
    doc: dict[str, Any] = {
        "_id": encode_id(NUMBER, internal),
        "_creationTime": rng.choice([1_700_000_000_000.5 + n, float(n), 1e300]),
    }
    for name in rng.sample(FIELDS, rng.randint(0, len(FIELDS))):
        doc[name] = rng.choice(
            [1.5, -0.0, "x", "é\x00", None, True, Int64(-3), b"\x00", [1.0, "y"], {"z": 2.0}]
        )
    return doc


def _layout(tx: Any, indexes: list[tuple[str, ...]]) -> None:
    tx.create_table("things", NUMBER)
    for i, fields in enumerate(indexes):
        tx.create_index("things", f"ix{i}", fields)


def _snapshot(tx: Any) -> tuple[Any, ...]:
    docs = tx.conn.execute("SELECT id, tbl, body FROM documents ORDER BY id").fetchall()
    keys = tx.conn.execute(
        "SELECT i.key, i.doc_id, d.name FROM indexes i JOIN index_defs d USING (index_id) "
        "ORDER BY d.name, i.key"
    ).fetchall()
    return docs, keys


async def _insert(
    root: Path, indexes: list[tuple[str, ...]], docs: list[dict[str, Any]], *, many: bool
) -> tuple[Any, ...]:
    async with await Store.open(root) as store:
        await store.write(lambda tx: _layout(tx, indexes))
        ix_ids = await store.read(
            lambda tx: {
                ix.index_id: name for name, ix in tx.catalog.table("things").indexes.items()
            }
        )

        def work(tx: Any) -> tuple[Any, Any]:
            if many:
                tx.insert_existing_many("things", docs)
            else:
                for doc in docs:
                    tx.insert_existing("things", doc)
            changed = [(ix_ids[0][i], key) for i, key in tx.changed_keys]
            changes = [(c.table, c.doc_id, c.old, c.new) for c in tx.changes()]
            return changed, changes

        (changed, changes), _ts = await store.write(work)
        rows, _ts = await store.read(_snapshot)
    return changed, changes, rows


@pytest.mark.parametrize("seed", range(12))
async def test_the_bulk_insert_stores_what_one_insert_each_does(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    indexes = [
        tuple(rng.sample(["a", "b", "nested.z"], rng.randint(1, 2)))
        for _ in range(rng.randint(0, 3))
    ]
    docs = [_random_doc(rng, n) for n in range(rng.randint(1, 40))]
    one_each = await _insert(tmp_path / "one", indexes, docs, many=False)
    bulk = await _insert(tmp_path / "many", indexes, docs, many=True)
    assert bulk == one_each


async def test_an_id_of_another_table_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    async with await Store.open(tmp_path / "d") as store:
        await store.write(lambda tx: _layout(tx, []))
        good = _random_doc(random.Random(1), 1)
        stray = {**good, "_id": encode_id(NUMBER + 1, bytes(16))}
        with pytest.raises(StoreError, match="is not an id of table 'things'"):
            await store.write(lambda tx: tx.insert_existing_many("things", [good, stray]))
        count, _ts = await store.read(
            lambda tx: tx.conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        )
        assert count == 0
