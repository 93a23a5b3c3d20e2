"""The edge's downlink against a real hub served on loopback: changes arrive live,
are applied once (with their cursor, in one job), and resume from the cursor after
either side was away."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from edge_upstream_kit import BlackHole, eventually
from replication.downlink_kit import served_hub, write_app
from replication.hub_kit import EDGE, KEY
from sync.sync_kit import add, serving

from gateway import Gateway
from gateway.cli.status_text import render
from gateway.replication.downlink import Downlink
from gateway.replication.downlink_apply import apply_page, read_cursors
from gateway.replication.downlink_contract import HUB_CHANGES_PATH
from gateway.values import decode_id, encode_id


@asynccontextmanager
async def edge(root: Path) -> AsyncIterator[Gateway]:
    async with Gateway.open(write_app(root / "edge"), root / "edgedata") as gw:
        yield gw


@asynccontextmanager
async def downlink(
    gw: Gateway, url: str, *, key: str = KEY, page_limit: int | None = None
) -> AsyncIterator[Downlink]:
    gw.store.gateway_id = EDGE  # the name the hub knows this edge by
    link = Downlink(
        gw.store,
        url,
        key=key,
        tables=["config"],
        path=HUB_CHANGES_PATH,
        backoff_min_s=0.05,
        backoff_max_s=0.2,
        unauthorized_retry_s=0.2,
        heartbeat_s=2.0,
        page_limit=page_limit,
        connect_timeout_s=0.5,
    )
    await link.start()
    try:
        yield link
    finally:
        await link.close()


async def _rates(gw: Gateway) -> dict[str, float]:
    rates: dict[str, float] = await gw.run_query("config:rates", {})
    return rates


async def _wait_rates(gw: Gateway, want: dict[str, float]) -> None:
    got: dict[str, float] = {}

    async def check() -> bool:
        nonlocal got
        got = await _rates(gw)
        return got == want

    await eventually_async(check, f"edge rates {want}")


async def eventually_async(
    check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def _outbox_rows(gw: Gateway) -> int:
    with sqlite3.connect(gw.store.path) as conn:
        return int(conn.execute("SELECT count(*) FROM change_log").fetchone()[0])


async def test_hub_changes_arrive_live_with_the_hubs_ids_and_no_outbox_entries(
    tmp_path: Path,
) -> None:
    async with served_hub(tmp_path) as hub, edge(tmp_path) as gw:
        a = await hub.gw.run_mutation("config:put", {"device": "a", "rate": 1.0})
        async with downlink(gw, hub.url) as link:
            await _wait_rates(gw, {"a": 1.0})
            await eventually(lambda: link.state == "up" and link.caught_up.get("config", False))
            b = await hub.gw.run_mutation("config:put", {"device": "b", "rate": 2.0})
            await hub.gw.run_mutation("config:rate", {"id": a, "rate": 3.0})
            await _wait_rates(gw, {"a": 3.0, "b": 2.0})
            await hub.gw.run_mutation("config:swap", {"id": b, "device": "c", "rate": 4.0})
            await hub.gw.run_mutation("config:drop", {"id": a})
            await _wait_rates(gw, {"c": 4.0})
            hub_doc = await hub.gw.run_query(
                HUB_CHANGES_PATH,
                {"gateway": EDGE, "key": KEY, "table": "config", "cursor": 0.0},
            )
            edge_ids, _ = await gw.store.read(lambda tx: tx.get(b))
            assert edge_ids is not None and edge_ids["_id"] == b
            assert edge_ids == hub_doc["changes"][0]["doc"]
            assert link.cursors["config"] == 5.0
        assert _outbox_rows(gw) == 0


async def test_after_an_edge_outage_the_missed_changes_arrive_once(tmp_path: Path) -> None:
    async with served_hub(tmp_path) as hub:
        async with edge(tmp_path) as gw, downlink(gw, hub.url) as link:
            await hub.gw.run_mutation("config:put", {"device": "a", "rate": 1.0})
            await _wait_rates(gw, {"a": 1.0})
            assert link.applied == 1
        # The edge is away: five changes at the hub meanwhile.
        ids = [await hub.gw.run_mutation("config:put", {"device": d, "rate": 2.0}) for d in "bcde"]
        await hub.gw.run_mutation("config:drop", {"id": ids[0]})
        async with edge(tmp_path) as gw:
            cursors, _ = await gw.store.read(lambda tx: read_cursors(tx.conn, ["config"]))
            assert cursors == {"config": 1.0}  # durable across the restart
            async with downlink(gw, hub.url) as link:
                await _wait_rates(gw, {"a": 1.0, "c": 2.0, "d": 2.0, "e": 2.0})
                await eventually(lambda: link.caught_up.get("config", False))
                # b's insert and delete collapse into one tombstone: 4 changes, once each.
                assert link.applied == 4
                assert link.cursors["config"] == 6.0


async def test_after_a_hub_outage_the_edge_reconnects_and_resumes(tmp_path: Path) -> None:
    async with served_hub(tmp_path) as hub, edge(tmp_path) as gw, downlink(gw, hub.url) as link:
        await hub.gw.run_mutation("config:put", {"device": "a", "rate": 1.0})
        await _wait_rates(gw, {"a": 1.0})
        await hub.stop_serving()
        await eventually(lambda: link.state == "down")
        await hub.gw.run_mutation("config:put", {"device": "b", "rate": 2.0})
        await hub.serve()
        await _wait_rates(gw, {"a": 1.0, "b": 2.0})
        await eventually(lambda: link.state == "up")
        assert link.applied == 2


async def test_a_wrong_key_is_refused_and_nothing_is_applied(tmp_path: Path) -> None:
    async with served_hub(tmp_path) as hub, edge(tmp_path) as gw:
        await hub.gw.run_mutation("config:put", {"device": "a", "rate": 1.0})
        async with downlink(gw, hub.url, key="wrong") as link:
            await eventually(lambda: link.state == "unauthorized")
            assert await _rates(gw) == {}


async def test_a_page_applies_once_with_its_cursor(tmp_path: Path) -> None:
    async with edge(tmp_path) as gw:
        number = gw.store.catalog.table("config").number  # type: ignore[union-attr]
        doc_id = encode_id(number, (7).to_bytes(16, "big"))
        doc = {"_id": doc_id, "_creationTime": 5.0, "device": "a", "rate": 1.0}
        page = {"changes": [{"id": doc_id, "cursor": 3.0, "deleted": False, "doc": doc}]}
        page |= {"cursor": 3.0, "done": True}
        first, _ = await gw.store.write(lambda tx: apply_page(tx, "config", page))
        again, _ = await gw.store.write(lambda tx: apply_page(tx, "config", page))
        assert (first.applied, again.applied, again.cursor) == (1, 0, 3.0)
        stored, _ = await gw.store.read(lambda tx: tx.get(doc_id))
        assert stored == doc
        gone = {"id": doc_id, "cursor": 4.0, "deleted": True, "doc": None}
        await gw.store.write(
            lambda tx: apply_page(tx, "config", {"changes": [gone], "cursor": 4.0, "done": True})
        )
        assert await _rates(gw) == {}
        assert _outbox_rows(gw) == 0


async def test_an_upstream_id_of_another_table_number_is_re_encoded(tmp_path: Path) -> None:
    async with edge(tmp_path) as gw:
        number = gw.store.catalog.table("config").number  # type: ignore[union-attr]
        theirs = encode_id(number + 40, (9).to_bytes(16, "big"))
        doc = {"_id": theirs, "_creationTime": 5.0, "device": "z", "rate": 9.0}
        page = {"changes": [{"id": theirs, "cursor": 1.0, "deleted": False, "doc": doc}]}
        await gw.store.write(lambda tx: apply_page(tx, "config", {**page, "cursor": 1.0}))
        mine = encode_id(number, decode_id(theirs)[1])
        stored, _ = await gw.store.read(lambda tx: tx.get(mine))
        assert stored is not None and stored["rate"] == 9.0


async def test_a_black_holing_link_is_found_by_timeouts(tmp_path: Path) -> None:
    hole = BlackHole()
    url = await hole.start()
    try:
        async with edge(tmp_path) as gw, downlink(gw, url) as link:
            await eventually(lambda: link.state == "down" and hole.connections >= 2)
    finally:
        await hole.stop()


async def test_full_pages_are_followed_until_done(tmp_path: Path) -> None:
    async with served_hub(tmp_path) as hub, edge(tmp_path) as gw:
        for n in range(5):
            await hub.gw.run_mutation("config:put", {"device": str(n), "rate": float(n)})
        async with downlink(gw, hub.url, page_limit=2) as link:
            await _wait_rates(gw, {str(n): float(n) for n in range(5)})
            await eventually(lambda: link.caught_up.get("config", False))
            assert (link.applied, link.cursors["config"]) == (5, 5.0)


async def test_after_the_hub_restarts_the_same_downlink_resumes(tmp_path: Path) -> None:
    async with edge(tmp_path) as gw:
        async with served_hub(tmp_path) as hub:
            port, url = hub.port, hub.url
            a = await hub.gw.run_mutation("config:put", {"device": "a", "rate": 1.0})
        async with downlink(gw, url) as link:
            await eventually(lambda: link.state == "down")  # the hub is closed
            # The hub's gateway opened again on its data and port: its counter goes on.
            async with served_hub(tmp_path, port=port) as hub:
                await hub.gw.run_mutation("config:rate", {"id": a, "rate": 2.0})
                await _wait_rates(gw, {"a": 2.0})
                await eventually(lambda: link.state == "up")
                assert (link.applied, link.cursors["config"]) == (1, 2.0)


async def test_a_websocket_subscriber_at_the_edge_sees_downlinked_changes(
    tmp_path: Path,
) -> None:
    async with served_hub(tmp_path) as hub:
        edge_app = write_app(tmp_path / "edge")
        async with serving(edge_app, tmp_path / "edgedata") as api:
            client = await api.open()
            await client.modify(add(0, "config:rates"))
            await client.transition()
            assert client.results[0] == ("ok", {})
            async with downlink(api.gateway, hub.url):
                await hub.gw.run_mutation("config:put", {"device": "a", "rate": 7.0})
                while client.results[0] != ("ok", {"a": 7.0}):
                    await client.transition()
            await client.close()


def test_status_text_shows_the_downlinks_lag_and_cursors() -> None:
    status = {
        "gateway": "g",
        "epoch": 1.0,
        "nowMs": 100_000.0,
        "link": {"state": "up", "sinceMs": None, "upstream": "u", "drainRate": 0.0},
        "backlog": {"entries": 0.0, "bytes": 0.0, "acked": 0.0, "newest": 0.0},
        "quota": {"maxBytes": 0.0, "overflow": "block"},
        "downlink": {
            "state": "down",
            "sinceMs": None,
            "tables": {"config": {"cursor": 12.0}},
            "caughtUp": False,
            "lagMs": 30_000.0,
        },
    }
    status["backlog"] |= {"quotaBytes": 0.0, "dropped": 0.0}
    line = next(x for x in render(status).splitlines() if x.startswith("downlink"))
    assert "backing off" in line and "lag 30 s" in line and "cursors config 12" in line
