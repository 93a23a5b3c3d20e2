"""An edge replicating into a real hub (two ``outpost serve`` processes on loopback)
through kill -9 of the edge, the hub going down and up, and a black-holing link, all
during the drain (issue 11, section 6).

The edge writes while the hub is down (inserts, then patches and deletes), then the hub
comes up (``OUTPOST_HUB=true``, the edge registered with ``outpost gateway add``) and
the edge drains through ``LinkProxy``. At random moments of the drain the test, in a
random order: SIGKILLs the edge and starts it again; stops the hub (SIGKILL or SIGTERM)
until the edge has been refused, and starts it again on the same port and data
directory; or black-holes the link (connections accepted, bytes swallowed, no reset)
until the edge has timed out on the connection it had and on a new one (accepted and
held by the proxy, or whose connect hangs), then lets traffic pass and waits for the edge to say the upstream
is back. The edge runs with short upstream timeouts
(``upstream_connect_timeout_s``, ``upstream_request_timeout_s``) so that takes seconds.

At the end: the hub has every document exactly once with the edge's body (patches and
deletes applied), one provenance row each whose seq follows the documents' insert order
(``n`` is the insert index), ``_creationTime`` in the same order, the hub's mark for the
edge is its last seq in one epoch, the edge's outbox is pruned, and both stores pass
``integrity_check``.

Half the black holes also drop SYNs (``LinkProxy.drop_syns``): the edge's connects
hang, and only ``upstream_connect_timeout_s`` ends them.

CI tier: 3 edge kills, 3 hub outages and 2 black holes on 5,000 documents. Soak tier:
20 edge kills, 8 hub outages and 4 black holes on 100,000 (``-m soak``).
``OUTPOST_REPLICATION_HUB_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from blackhole_proxy_kit import LinkProxy
from edge_process_kit import EdgeProcess, add_gateway, free_port, provenance_rows, store_rows
from edge_upstream_kit import PADDED_SCHEMA, eventually, write_app

from gateway import Gateway

DRAIN_DEADLINE_S = 600.0
EVENT_DEADLINE_S = 60.0
WRITE_CHUNK = 500
TOUCHED = 100  # of the first 200 documents: 60 patched, 40 deleted
# Short enough that a black hole is seen in seconds, long enough for a loaded CI box.
# Debug logging: the edge logs every failed push then, not only the first of an outage.
EDGE_SETTINGS = {
    "UPSTREAM_CONNECT_TIMEOUT_S": "2",
    "UPSTREAM_REQUEST_TIMEOUT_S": "4",
    "LOG_LEVEL": "debug",
}
# Each answer of the hub is held this long, so the test's poll sees each batch land.
RESPONSE_DELAY_S = 0.2
TIMED_OUT = "no answer within the timeout"
BACK = "upstream reachable again"
DOWN = "upstream unreachable or refusing"


@dataclass(frozen=True)
class Tier:
    docs: int
    edge_kills: int
    hub_outages: int
    black_holes: int
    pad_bytes: int  # a string in each document: bigger ones, more batches to cut into


# 16 KiB documents: about 250 to a batch (4 MiB), 20 batches for the 8 events.
CI = Tier(docs=5_000, edge_kills=3, hub_outages=3, black_holes=2, pad_bytes=16_000)
# Small documents: 1,000 to a batch, 100 batches for the 32 events.
SOAK = Tier(docs=100_000, edge_kills=20, hub_outages=8, black_holes=4, pad_bytes=0)


@dataclass
class Link:
    """The edge, the hub, and the proxy between them."""

    edge: EdgeProcess
    hub: EdgeProcess
    proxy: LinkProxy


async def run_tier(tier: Tier, tmp_path: Path) -> None:
    seed = int(os.environ.get("OUTPOST_REPLICATION_HUB_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    app = write_app(tmp_path / "app", PADDED_SCHEMA)
    edge_data, hub_data = tmp_path / "edge", tmp_path / "hub"
    async with Gateway.open(app, edge_data) as gw:  # the edge's id exists from its first open
        edge_id = gw.store.gateway_id
    (edge_data / "upstream_key").write_text(add_gateway(app, hub_data, edge_id))
    port = free_port()
    hub = EdgeProcess(app, hub_data, "", tmp_path / "hub.log", port=port, hub=True)
    async with LinkProxy(port) as proxy:
        edge = EdgeProcess(app, edge_data, proxy.url, tmp_path / "edge.log", extra=EDGE_SETTINGS)
        link = Link(edge, hub, proxy)
        try:
            await asyncio.to_thread(edge.start)  # the hub is down: the edge keeps its outbox
            changes, touched = await _write(edge, tier, rng)
            proxy.response_delay_s = RESPONSE_DELAY_S
            await asyncio.to_thread(hub.start)
            drain_start = time.monotonic()
            await _disrupt(link, tier, rng)
            proxy.response_delay_s = 0.0
            await eventually(lambda: _outbox_empty(edge), DRAIN_DEADLINE_S)
            drain_s = time.monotonic() - drain_start
            assert await asyncio.to_thread(edge.stop) == 0
            assert await asyncio.to_thread(hub.stop) == 0
        except BaseException:
            print(f"seed {seed}\nedge:\n{edge.tail()}\nhub:\n{hub.tail()}")
            for process in (edge, hub):
                if process.proc is not None:
                    await asyncio.to_thread(process.kill9)
            raise
    _check(edge_data, hub_data, tier.docs, changes, touched, seed)
    print(  # the figures of a run (``-s``)
        f"seed {seed}: {changes} changes drained in {drain_s:.1f} s through {tier.edge_kills} "
        f"edge kills, {tier.hub_outages} hub outages ({hub.starts} hub starts) and "
        f"{tier.black_holes} black holes ({proxy.held} connections held and timed "
        f"out by the edge, {proxy.refused} refused while the hub was down)"
    )


async def _disrupt(link: Link, tier: Tier, rng: random.Random) -> None:
    """The tier's events in a random order, each at a random point of the drain (a count
    of documents on the hub), each while documents are still missing there."""
    holes = ["hole", "syn"] * (tier.black_holes // 2) + ["hole"] * (tier.black_holes % 2)
    events = ["edge"] * tier.edge_kills + ["hub"] * tier.hub_outages + holes
    rng.shuffle(events)
    # The points stay below 60%: an event may let a batch or two land (a black hole
    # waits for the edge to be back), and the tiers have some 2.5 batches per event.
    points = sorted(rng.sample(range(tier.docs // 20, tier.docs * 6 // 10), len(events)))
    for event, point in zip(events, points, strict=True):
        count = await _hub_reaches(link.hub, point)
        assert count < tier.docs, f"{event} at {count} documents: the inserts were all there"
        if event == "edge":
            await asyncio.to_thread(link.edge.kill9)
            await asyncio.to_thread(link.edge.start)
        elif event == "hub":
            await _hub_outage(link, rng)
        else:
            await _black_hole(link, drop_syns=event == "syn")


async def _hub_outage(link: Link, rng: random.Random) -> None:
    """Stop the hub (SIGKILL or SIGTERM) until the edge was refused; start it again."""
    if rng.random() < 0.5:
        await asyncio.to_thread(link.hub.kill9)
    else:
        assert await asyncio.to_thread(link.hub.stop) == 0
    refused = link.proxy.refused
    await eventually(lambda: link.proxy.refused > refused, EVENT_DEADLINE_S)
    await asyncio.to_thread(link.hub.start)


async def _black_hole(link: Link, *, drop_syns: bool) -> None:
    """Black-hole the link until the edge timed out twice: on the connection it had (a
    push in flight) and on a new one, which the proxy accepted and held or, with
    ``drop_syns``, whose connect hung; then let traffic pass until the edge says the
    upstream is back."""
    await eventually(lambda: _last_link_line(link.edge) != DOWN, EVENT_DEADLINE_S)
    timed_out, back = _log_count(link.edge, TIMED_OUT), _log_count(link.edge, BACK)
    abandoned = link.proxy.abandoned
    link.proxy.black_hole = True
    if drop_syns:
        link.proxy.drop_syns()
    try:
        await eventually(
            lambda: _log_count(link.edge, TIMED_OUT) >= timed_out + 2, EVENT_DEADLINE_S
        )
        if not drop_syns:  # the new connection's end reaches the proxy just after
            await eventually(lambda: link.proxy.abandoned > abandoned, EVENT_DEADLINE_S)
    finally:
        link.proxy.black_hole = False
        if drop_syns:
            await link.proxy.accept_again()
    await eventually(lambda: _log_count(link.edge, BACK) > back, EVENT_DEADLINE_S)


def _log_count(edge: EdgeProcess, text: str) -> int:
    return edge.log.read_text(errors="replace").count(text)


def _last_link_line(edge: EdgeProcess) -> str:
    """The edge's latest word on its link: ``DOWN``, ``BACK``, or "" (none since start)."""
    for line in reversed(edge.log.read_text(errors="replace").splitlines()):
        if "replicating to " in line:
            return ""
        for word in (DOWN, BACK):
            if word in line:
                return word
    return ""


async def _hub_reaches(hub: EdgeProcess, documents: int) -> int:
    """Poll the hub's document count (its store file, read-only: a count through the API
    would read every padded document); the count."""
    sql = _TABLE_SQL.replace("id, body", "count(*)").format(table="readings")
    for _ in range(int(DRAIN_DEADLINE_S / 0.05)):
        [(count,)] = await asyncio.to_thread(store_rows, hub.data, sql)
        if count >= documents:
            return int(count)
        await asyncio.sleep(0.05)
    raise AssertionError(f"the hub never reached {documents} documents")


def _outbox_empty(edge: EdgeProcess) -> bool:
    rows = store_rows(edge.data, "SELECT count(*) FROM change_log")
    return rows == [(0,)]


async def _write(edge: EdgeProcess, tier: Tier, rng: random.Random) -> tuple[int, list[str]]:
    """Inserts (``n`` = insert index), then 60 patches and 40 deletes among the first 200;
    the number of changes and the touched ids (patched first)."""
    docs, chunk = tier.docs, WRITE_CHUNK if not tier.pad_bytes else 50
    for start in range(0, docs, chunk):
        args = {"start": start, "count": min(chunk, docs - start), "pad": tier.pad_bytes}
        await asyncio.to_thread(edge.call, "mutation", "readings:add_many", args)
    ids = await asyncio.to_thread(edge.call, "query", "readings:ids", {"limit": 200})
    touched = rng.sample(ids, TOUCHED)
    for doc_id in touched[:60]:
        await asyncio.to_thread(edge.call, "mutation", "readings:bump", {"id": doc_id})
    for doc_id in touched[60:]:
        await asyncio.to_thread(edge.call, "mutation", "readings:remove", {"id": doc_id})
    return docs + TOUCHED, touched


_TABLE_SQL = (
    "SELECT id, body FROM documents WHERE tbl = (SELECT number FROM tables WHERE name = '{table}')"
)


def _rows(data: Path, table: str) -> list[dict[str, object]]:
    return [json.loads(body) for _, body in store_rows(data, _TABLE_SQL.format(table=table))]


def _check(
    edge_data: Path, hub_data: Path, docs: int, changes: int, touched: list[str], seed: int
) -> None:
    hub_rows = _rows(hub_data, "readings")
    hub_docs = {str(doc["_id"]): doc for doc in hub_rows}
    assert len(hub_docs) == len(hub_rows) == docs - 40, f"seed {seed}"
    assert hub_docs == {str(doc["_id"]): doc for doc in _rows(edge_data, "readings")}
    assert not set(touched[60:]) & set(hub_docs), f"seed {seed}: a deleted document is back"
    # Provenance: one row per document, from one epoch, the insert's seq in insert order.
    provenance = provenance_rows(hub_data)
    seq_of = {str(row["docId"]): int(row["seq"]) for row in provenance}
    assert len(provenance) == len(seq_of) == len(hub_docs), f"seed {seed}"
    assert len({row["epoch"] for row in provenance}) == 1, f"seed {seed}"
    bumped = set(touched[:60])
    for doc_id, doc in hub_docs.items():
        index = int(doc["n"]) - (doc_id in bumped)
        assert seq_of[doc_id] == index + 1, f"seed {seed}: {doc_id} {doc} seq {seq_of[doc_id]}"
    by_creation = sorted(hub_docs.values(), key=lambda doc: doc["_creationTime"])
    order = [seq_of[str(doc["_id"])] for doc in by_creation]
    assert order == sorted(order), f"seed {seed}: _creationTime is not in commit order"
    marks = _rows(hub_data, "_replication_marks")
    assert [mark["applied"] for mark in marks] == [changes], f"seed {seed}: marks {marks}"
    assert store_rows(edge_data, "SELECT count(*) FROM change_log") == [(0,)]
    for data in (edge_data, hub_data):
        assert store_rows(data, "PRAGMA integrity_check") == [("ok",)]


@pytest.mark.timeout(240)
async def test_an_edge_drains_into_a_real_hub_through_kills_outages_and_black_holes(
    tmp_path: Path,
) -> None:
    await run_tier(CI, tmp_path)


@pytest.mark.soak
@pytest.mark.timeout(3600)
async def test_an_edge_drains_into_a_real_hub_through_kills_outages_and_black_holes_soak(
    tmp_path: Path,
) -> None:
    await run_tier(SOAK, tmp_path)
