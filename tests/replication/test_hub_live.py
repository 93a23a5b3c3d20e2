"""Live queries on a hub see replicated writes like any other (sync protocol client)."""

from __future__ import annotations

from pathlib import Path

from hub_kit import Edge, change, number, push, register, write_hub_app
from sync.sync_kit import add, serving

from gateway.config import Settings


async def test_a_subscriber_on_the_hub_sees_a_pushed_batch(tmp_path: Path) -> None:
    data = tmp_path / "hubdata"
    register(data)
    async with serving(write_hub_app(tmp_path), data, Settings(hub=True)) as api:
        client = await api.open()
        await client.modify(add(0, "views:celsius"))
        await client.transition()
        assert client.results[0] == ("ok", [])
        edge = Edge(number(api.gateway, "readings"))
        reading = {"device": "d1", "celsius": 21.5}
        batch = edge.batch(1, [change("insert", "readings", edge.new_id(), reading)])
        (await push(api.gateway, batch)).unwrap()
        await client.transition()
        assert client.results[0] == ("ok", [21.5])
        await client.close()
