"""``/metrics`` sees the sync sockets and their live queries come and go."""

from __future__ import annotations

import asyncio

from prometheus_text_kit import Scrape, parse
from sync.sync_kit import SyncApi, add

DEADLINE_S = 10.0


async def _scrape(api: SyncApi) -> Scrape:
    async with api.session.get("/metrics") as resp:
        assert resp.status == 200
        return parse(await resp.text())


async def _until(api: SyncApi, name: str, value: float) -> Scrape:
    """The first scrape where ``name`` reads ``value`` (a closed socket is forgotten
    after the client's close returns)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while (scrape := await _scrape(api)).value(name) != value:
        assert loop.time() < deadline, f"{name} never read {value}: {scrape.value(name)}"
        await asyncio.sleep(0.02)
    return scrape


async def test_a_subscription_moves_the_gauges_and_a_change_runs_a_round(sync_api: SyncApi) -> None:
    before = await _scrape(sync_api)
    assert before.value("outpost_sync_subscriptions") == 0
    client = await sync_api.open()
    await client.modify(
        add(0, "notes:bodies", {"topic": "t"}), add(1, "notes:count", {"topic": "t"})
    )
    await client.transition()
    subscribed = await _scrape(sync_api)
    assert subscribed.value("outpost_sync_subscriptions") == 2
    assert subscribed.value("outpost_sync_sockets") == 1
    assert subscribed.value("outpost_sync_sessions") == 1

    await sync_api.gateway.run_mutation("notes:add", {"topic": "t", "body": "hi"})
    await client.transition()  # the rerun of both queries, from one snapshot
    changed = await _scrape(sync_api)
    rounds = "outpost_sync_rounds_total"
    assert changed.value(rounds) > subscribed.value(rounds)
    round_s = "outpost_sync_round_duration_seconds"
    assert changed.histogram(round_s)[2] == changed.value(rounds)
    assert changed.histogram(round_s)[1] > subscribed.histogram(round_s)[1]
    runs = "outpost_sync_query_runs_total"
    assert changed.value(runs) >= subscribed.value(runs) + 2

    await client.close()
    closed = await _until(sync_api, "outpost_sync_sockets", 0)
    assert closed.value("outpost_sync_subscriptions") == 0
