"""Replication exactly once through kill -9 of the edge during the drain (issue 11, section 6).

A real ``outpost serve`` edge writes documents (inserts, then patches and deletes) while
its upstream is down; the upstream comes up and the edge drains its outbox, and the test
SIGKILLs the edge at random moments of the drain (a kill may land while a batch is in
flight, or after the upstream applied it and before the edge recorded the answer) and
starts it again. The upstream is the fake of ``tests/edge_upstream_kit.py``, which keeps
the contract's per-(gateway, epoch) mark and records every change it applies.

At the end: every seq applied exactly once and in order, in one epoch (a restart is no
clone); the upstream's documents are the edge's, patches and deletes included; the
edge's outbox is empty (pruned) and its store passes ``integrity_check``.

CI tier: 3 kills on 5,000 documents. Soak tier: 20 kills on 100,000 (``-m soak``).
``OUTPOST_REPLICATION_KILL9_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from edge_process_kit import EdgeProcess, store_rows
from edge_upstream_kit import KEY, FakeUpstream, eventually, write_app

WRITE_CHUNK = 500
DRAIN_DEADLINE_S = 300.0


@dataclass(frozen=True)
class Tier:
    docs: int
    kills: int
    batches_between_kills: int


CI = Tier(docs=5_000, kills=3, batches_between_kills=1)
SOAK = Tier(docs=100_000, kills=20, batches_between_kills=4)


async def run_tier(tier: Tier, tmp_path: Path) -> None:
    seed = int(os.environ.get("OUTPOST_REPLICATION_KILL9_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    upstream = FakeUpstream()
    upstream.down = True
    await upstream.start()
    data = tmp_path / "data"
    data.mkdir()
    (data / "upstream_key").write_text(KEY)
    edge = EdgeProcess(write_app(tmp_path / "app"), data, upstream.url, tmp_path / "edge.log")
    try:
        await asyncio.to_thread(edge.start)
        changes = await _write(edge, tier.docs, rng)
        upstream.down = False
        upstream.delay_s = 0.1
        mid_drain = 0
        for _ in range(tier.kills):
            target = len(upstream.batches) + rng.randint(1, tier.batches_between_kills)
            await eventually(lambda t=target: len(upstream.batches) >= t, DRAIN_DEADLINE_S)
            await asyncio.sleep(rng.uniform(0, 0.15))  # before, during or after an answer
            mid_drain += len(upstream.applied) < changes
            await asyncio.to_thread(edge.kill9)
            await asyncio.to_thread(edge.start)
        upstream.delay_s = 0.0
        await eventually(lambda: len(upstream.applied) >= changes, DRAIN_DEADLINE_S)
        await asyncio.sleep(0.5)  # the last acknowledgement's writer job
        assert await asyncio.to_thread(edge.stop) == 0
        assert mid_drain == tier.kills, f"only {mid_drain} kills landed during the drain"
    except BaseException:
        print(f"seed {seed}\n{edge.tail()}")
        if edge.proc is not None:
            await asyncio.to_thread(edge.kill9)
        raise
    finally:
        await upstream.stop()
    _check(upstream, data, changes, seed)


async def _write(edge: EdgeProcess, docs: int, rng: random.Random) -> int:
    """Inserts, then patches and deletes of some of them; how many changes that is."""
    for start in range(0, docs, WRITE_CHUNK):
        count = min(WRITE_CHUNK, docs - start)
        await asyncio.to_thread(
            edge.call, "mutation", "readings:add_many", {"start": start, "count": count}
        )
    ids = await asyncio.to_thread(edge.call, "query", "readings:ids", {"limit": 200})
    touched = rng.sample(ids, 100)
    for doc_id in touched[:60]:
        await asyncio.to_thread(edge.call, "mutation", "readings:bump", {"id": doc_id})
    for doc_id in touched[60:]:
        await asyncio.to_thread(edge.call, "mutation", "readings:remove", {"id": doc_id})
    return docs + 100


def _check(upstream: FakeUpstream, data: Path, changes: int, seed: int) -> None:
    seqs = upstream.seqs()
    epochs = {epoch for epoch, _ in seqs}
    assert len(epochs) == 1, f"seed {seed}: epochs {epochs}"
    assert [s for _, s in seqs] == list(range(1, changes + 1)), f"seed {seed}"
    edge_docs = {
        doc_id: json.loads(body)
        for doc_id, body in store_rows(
            data,
            "SELECT id, body FROM documents WHERE tbl = "
            "(SELECT number FROM tables WHERE name = 'readings')",
        )
    }
    upstream_docs = {k: v for k, v in upstream.docs.items() if v is not None}
    assert upstream_docs == edge_docs, f"seed {seed}"
    assert store_rows(data, "SELECT count(*) FROM change_log") == [(0,)]
    assert store_rows(data, "PRAGMA integrity_check") == [("ok",)]


async def test_replication_survives_kill9_during_the_drain(tmp_path: Path) -> None:
    await run_tier(CI, tmp_path)


@pytest.mark.soak
@pytest.mark.timeout(3600)
async def test_replication_survives_kill9_during_the_drain_soak(tmp_path: Path) -> None:
    await run_tier(SOAK, tmp_path)
