"""The hub's insert fast path (``hub._apply_all``) against the plain one (``_apply`` for
each change) on random batches: the same documents, provenance and dead letters.

The batches mix what the fast path takes (inserts of new, valid documents into a table
the batch has seen) with everything it must leave to ``_apply``: a table's first change,
documents the schema refuses or that need converting, ids of another table or no id at
all, inserts of documents that exist (an upsert), updates, deletes and re-inserts of a
deleted id, unknown ops and tables.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hub_kit import Edge, change, documents, hub, number

from gateway import Gateway
from gateway.replication import hub as hub_module
from gateway.replication.batch import PUSH_PATH
from gateway.runtime.functions import JsonArgs


def _body(rng: random.Random, table: str) -> dict[str, Any]:
    roll = rng.random()
    if table == "notes":
        return {"text": "n" * rng.randint(0, 5)} if roll < 0.9 else {"text": 5.0}
    if roll < 0.7:
        return {"device": f"d{rng.randint(0, 3)}", "celsius": rng.uniform(-5, 40)}
    if roll < 0.8:  # needs converting first (Int64): not for the flat check
        return {"device": "d", "celsius": {"$integer": "AQAAAAAAAAA="}}
    if roll < 0.9:  # refused by the schema: a dead letter
        return {"device": 1.0, "celsius": 2.0}
    return {"device": "d", "celsius": -0.0}


def _history(edges: dict[str, Edge], rng: random.Random, count: int) -> list[dict[str, Any]]:
    made: list[tuple[str, str]] = []
    out: list[dict[str, Any]] = []
    for _ in range(count):
        table = rng.choice(["readings", "readings", "notes"])
        roll = rng.random()
        if roll < 0.6 or not made:
            doc_id = edges[table].new_id()
            made.append((table, doc_id))
            out.append(change("insert", table, doc_id, _body(rng, table)))
        elif roll < 0.7:  # an insert of one that exists (or was deleted): an upsert
            table, doc_id = rng.choice(made)
            out.append(change("insert", table, doc_id, _body(rng, table)))
        elif roll < 0.8:
            table, doc_id = rng.choice(made)
            out.append(change("update", table, doc_id, _body(rng, table)))
        elif roll < 0.88:
            table, doc_id = rng.choice(made)
            out.append(change("delete", table, doc_id))
        elif roll < 0.92:  # an id of the other table
            other = "notes" if table == "readings" else "readings"
            out.append(change("insert", table, edges[other].new_id(), _body(rng, table)))
        elif roll < 0.95:
            out.append({"op": "insert", "table": table, "ts": "1", "doc": None})
        elif roll < 0.97:
            out.append(change("skip", table, edges[table].new_id()))
        else:
            out.append(change("insert", "_secret", edges[table].new_id(), {"x": 1.0}))
    return out


async def _state(gw: Gateway) -> dict[str, Any]:
    """The app tables' documents and index rows, provenance, and dead letters (less what
    the hub makes itself: its own ids and times)."""

    def read(tx: Any) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for table in ("readings", "notes"):
            info = tx.catalog.table(table)
            state[table] = tx.conn.execute(
                "SELECT id, body FROM documents WHERE tbl = ? ORDER BY id", (info.number,)
            ).fetchall()
            for ix in info.indexes.values():
                state[f"{table}.{ix.name}"] = tx.conn.execute(
                    "SELECT key, doc_id FROM indexes WHERE index_id = ? ORDER BY key",
                    (ix.index_id,),
                ).fetchall()
        state["origins"] = tx.conn.execute(
            "SELECT doc_id, tbl, seq, ts FROM replication_origins ORDER BY doc_id"
        ).fetchall()
        return state

    state, _ = await gw.store.read(read)
    letters = await documents(gw, "_replication_dead_letters")
    state["letters"] = [(d["seq"], d["docId"], d["reason"]) for d in letters]
    return state


@pytest.mark.parametrize("seed", range(6))
async def test_the_fast_path_stores_what_the_plain_path_does(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    states = []
    for fast in (True, False):
        rng = random.Random(seed)
        root = tmp_path / ("fast" if fast else "plain")
        with monkeypatch.context() as patch:
            if not fast:

                def plain(batch: Any, todo: list[Any]) -> None:
                    for change_ in todo:
                        hub_module._apply(batch, change_)

                patch.setattr(hub_module, "_apply_all", plain)
            async with hub(root) as gw:
                edges = {t: Edge(number(gw, t)) for t in ("readings", "notes")}
                history = _history(edges, rng, 300)
                first = 1
                while first <= len(history):
                    last = min(len(history), first + rng.randint(0, 60))
                    batch = edges["readings"].batch(first, history[first - 1 : last])
                    # As JSON, as the HTTP API hands it over (Convex JSON in documents).
                    result = await gw.call("mutation", PUSH_PATH, JsonArgs(batch), admin=False)
                    assert result.ok, result.error
                    first = last + 1
                states.append(await _state(gw))
    fast_state, plain_state = states
    assert fast_state["readings"] and fast_state["letters"], "the test would test nothing"
    assert fast_state == plain_state
