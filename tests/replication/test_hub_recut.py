"""Exactly once under any re-cutting: overlapping, repeated and gapped batches in random
order leave the hub as if every change had been applied once, in seq order."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hub_kit import Edge, change, documents, hub, number, push

from gateway.replication.batch import GAP_CODE


def _history(edge: Edge, rng: random.Random, count: int) -> list[dict[str, Any]]:
    """Inserts, updates and deletes over a few documents, as an edge's outbox holds them."""
    live: list[str] = []
    out: list[dict[str, Any]] = []
    for step in range(count):
        roll = rng.random()
        if not live or roll < 0.4:
            live.append(edge.new_id())
            out.append(change("insert", "notes", live[-1], {"text": f"v{step}"}))
        elif roll < 0.8:
            out.append(change("update", "notes", rng.choice(live), {"text": f"v{step}"}))
        else:
            out.append(change("delete", "notes", live.pop(rng.randrange(len(live)))))
    return out


def _expected(history: list[dict[str, Any]]) -> dict[str, str]:
    state: dict[str, str] = {}
    for c in history:
        if c["op"] == "delete":
            state.pop(c["id"])
        else:
            state[c["id"]] = c["doc"]["text"]
    return state


@pytest.mark.parametrize("seed", [11, 12, 13])
async def test_random_recuts_apply_every_change_exactly_once(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    async with hub(tmp_path) as gw:
        edge = Edge(number(gw, "notes"))
        history = _history(edge, rng, 120)
        acked = 0
        while acked < len(history):
            # Re-sends, overlaps and gaps; the very first batch starts the mark, so at 1.
            first = rng.randint(max(1, acked - 5), acked + 3) if acked else 1
            last = min(len(history), first + rng.randint(0, 15))
            result = await push(gw, edge.batch(first, history[first - 1 : last]))
            if result.ok:
                assert result.value == {"applied": float(max(last, acked))}
                acked = max(last, acked)
            else:
                assert result.error_data == {"code": GAP_CODE, "applied": float(acked)}
        docs = await documents(gw, "notes")
        assert {d["_id"]: d["text"] for d in docs} == _expected(history)
        assert await documents(gw, "_replication_dead_letters") == []
