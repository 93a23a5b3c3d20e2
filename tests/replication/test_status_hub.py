"""The hub's view for ``outpost status``: two gateways pushing, each one's last seen, lag
and the backlog it reported with the optional ``newest``; an upstream that refuses
``newest`` gets batches without it."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from edge_upstream_kit import KEY as EDGE_KEY
from edge_upstream_kit import FakeUpstream, eventually, write_app
from hub_kit import EDGE, KEY, Edge, change, hub, number, push

from gateway import Gateway
from gateway.cli.status_text import render
from gateway.replication.client import PushClient
from gateway.replication.credentials import hash_key, registry_path, write_registry
from gateway.replication.hub_status import STATUS_PATH as GATEWAYS_PATH
from gateway.replication.uplink import Uplink

OTHER = "9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a"
OTHER_KEY = "other-edge-key-0123456789abcdef0123456789abc"


async def test_the_hub_shows_each_gateway_and_what_it_reported(tmp_path: Path) -> None:
    async with hub(tmp_path) as gw:
        write_registry(
            registry_path(gw.data_dir), {EDGE: hash_key(KEY), OTHER: hash_key(OTHER_KEY)}
        )
        edge = Edge(number(gw, "readings"))
        body = {"device": "d", "celsius": 1.0}
        batch = edge.batch(1, [change("insert", "readings", edge.new_id(), body)], newest=40.0)
        assert (await push(gw, batch)).error is None
        other = edge.batch(1, [change("insert", "readings", edge.new_id(), body)])
        other |= {"gateway": OTHER, "key": OTHER_KEY}  # an edge that does not send newest
        assert (await push(gw, other)).error is None
        rows = await gw.run_query(GATEWAYS_PATH)
    first, second = sorted(rows, key=lambda r: r["gateway"] != EDGE)
    assert first["gateway"] == EDGE and first["newest"] == 40 and first["behind"] == 39
    assert second["gateway"] == OTHER and "behind" not in second
    assert first["registered"] and second["registered"] and first["lagMs"] >= 0
    text = render({"hub": True, "nowMs": first["lastSeenMs"], "gateways": rows})
    assert "2 gateway(s)" in text and "behind 39" in text and OTHER in text


class _StrictUpstream(FakeUpstream):
    """An upstream whose push refuses unknown fields, as an older one would."""

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()  # aiohttp keeps the body: the parent reads it again
        if "newest" in body["args"]:
            self.batches.append(body["args"])
            return web.json_response(
                {"status": "error", "errorMessage": "Object contains extra field `newest`"}
            )
        return await super()._handle(request)


async def test_an_upstream_refusing_newest_gets_batches_without_it(tmp_path: Path) -> None:
    upstream = _StrictUpstream(key=EDGE_KEY)
    await upstream.start()
    try:
        async with Gateway.open(write_app(tmp_path / "app"), tmp_path / "d") as gw:
            uplink = Uplink(
                gw.store, PushClient(upstream.url), key=EDGE_KEY, schema=lambda: "s",
                backoff_min_s=0.05, backoff_max_s=0.1, idle_poll_s=0.2,
            )  # fmt: skip
            await uplink.start()
            try:
                await gw.run_mutation("readings:add", {"n": 1})
                await eventually(lambda: uplink.acked == 1)
            finally:
                await uplink.close()
    finally:
        await upstream.stop()
    assert len(upstream.applied) == 1 and "newest" not in upstream.batches[-1]
