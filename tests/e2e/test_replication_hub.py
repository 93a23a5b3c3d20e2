"""An edge replicating into a real hub (two ``outpost serve`` processes on loopback)
through kill -9 of the edge during the drain and a kill -9 of the hub (issue 11, section 6).

The edge writes while the hub is down (inserts, patches, deletes), then the hub comes up
(``OUTPOST_HUB=true``, the edge registered with ``outpost gateway add``) and the edge
drains; the test SIGKILLs the edge at random moments of the drain and the hub once, and
starts each again. At the end the hub's documents are exactly the edge's, the hub's mark
for the edge is its last seq, the edge's outbox is pruned, and both stores pass
``integrity_check``. ``OUTPOST_REPLICATION_HUB_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
from pathlib import Path

from edge_process_kit import EdgeProcess, add_gateway, store_rows
from edge_upstream_kit import eventually, write_app

from gateway import Gateway

DOCS = 5_000
EDGE_KILLS = 3
DRAIN_DEADLINE_S = 300.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_an_edge_drains_into_a_real_hub_through_kill9(tmp_path: Path) -> None:
    seed = int(os.environ.get("OUTPOST_REPLICATION_HUB_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    app = write_app(tmp_path / "app")
    edge_data, hub_data = tmp_path / "edge", tmp_path / "hub"
    async with Gateway.open(app, edge_data) as gw:  # the edge's id exists from its first open
        edge_id = gw.store.gateway_id
    (edge_data / "upstream_key").write_text(add_gateway(app, hub_data, edge_id))
    port = _free_port()
    hub = EdgeProcess(app, hub_data, "", tmp_path / "hub.log", port=port, hub=True)
    edge = EdgeProcess(app, edge_data, f"http://127.0.0.1:{port}", tmp_path / "edge.log")
    try:
        await asyncio.to_thread(edge.start)  # the hub is down: the edge keeps its outbox
        changes = await _write(edge, rng)
        await asyncio.to_thread(hub.start)
        # Kill points: documents on the hub, spread over the drain (the last: the hub's).
        points = sorted(rng.sample(range(DOCS // 10, DOCS * 8 // 10), EDGE_KILLS + 1))
        for kill, point in enumerate(points):
            await _hub_reaches(hub, point)
            if kill == EDGE_KILLS:  # the hub's turn
                await asyncio.to_thread(hub.kill9)
                await asyncio.sleep(rng.uniform(0.2, 1.0))  # the edge backs off meanwhile
                await asyncio.to_thread(hub.start)
            else:
                await asyncio.to_thread(edge.kill9)
                await asyncio.to_thread(edge.start)
        await eventually(lambda: _outbox_empty(edge), DRAIN_DEADLINE_S)
        assert await asyncio.to_thread(edge.stop) == 0
        assert await asyncio.to_thread(hub.stop) == 0
    except BaseException:
        print(f"seed {seed}\nedge:\n{edge.tail()}\nhub:\n{hub.tail()}")
        for process in (edge, hub):
            if process.proc is not None:
                await asyncio.to_thread(process.kill9)
        raise
    assert _readings(hub_data) == _readings(edge_data), f"seed {seed}"
    marks = store_rows(hub_data, _TABLE_SQL.format(table="_replication_marks"))
    applied = [json.loads(body)["applied"] for _, body in marks]
    assert applied == [changes], f"seed {seed}: marks {applied}"
    for data in (edge_data, hub_data):
        assert store_rows(data, "PRAGMA integrity_check") == [("ok",)]


_TABLE_SQL = (
    "SELECT id, body FROM documents WHERE tbl = (SELECT number FROM tables WHERE name = '{table}')"
)


def _readings(data: Path) -> dict[str, object]:
    return {i: json.loads(b) for i, b in store_rows(data, _TABLE_SQL.format(table="readings"))}


async def _hub_reaches(hub: EdgeProcess, documents: int) -> None:
    """Poll the hub's document count (off the loop, a few times a second)."""
    for _ in range(int(DRAIN_DEADLINE_S / 0.1)):
        count = await asyncio.to_thread(hub.call, "query", "readings:count", {})
        if int(count) >= documents:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the hub never reached {documents} documents")


def _outbox_empty(edge: EdgeProcess) -> bool:
    rows = store_rows(edge.data, "SELECT count(*) FROM change_log")
    return rows == [(0,)]


async def _write(edge: EdgeProcess, rng: random.Random) -> int:
    for start in range(0, DOCS, 500):
        await asyncio.to_thread(
            edge.call, "mutation", "readings:add_many", {"start": start, "count": 500}
        )
    ids = await asyncio.to_thread(edge.call, "query", "readings:ids", {"limit": 200})
    touched = rng.sample(ids, 100)
    for doc_id in touched[:60]:
        await asyncio.to_thread(edge.call, "mutation", "readings:bump", {"id": doc_id})
    for doc_id in touched[60:]:
        await asyncio.to_thread(edge.call, "mutation", "readings:remove", {"id": doc_id})
    return DOCS + 100
