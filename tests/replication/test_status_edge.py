"""``_system/replication:status`` on an edge (``outpost status``): link state, backlog,
acknowledged seq and drain rate, against a fake upstream, in process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from edge_upstream_kit import KEY, FakeUpstream, eventually, write_app

from gateway.cli.status_text import render
from gateway.config import Settings
from gateway.replication.edge_status import STATUS_PATH, DrainMeter
from gateway.service import Service


async def _status_of(service: Service) -> dict[str, Any]:
    value: dict[str, Any] = await service.gateway.run_query(STATUS_PATH)
    return value


async def test_status_follows_the_link_and_the_backlog(tmp_path: Path) -> None:
    upstream = FakeUpstream()
    await upstream.start()
    data = tmp_path / "d"
    data.mkdir()
    (data / "upstream_key").write_text(KEY)
    settings = Settings(port=0, data_dir=str(data), mqtt_broker="off", upstream_url=upstream.url)
    try:
        async with Service(write_app(tmp_path / "app"), settings) as service:
            gw = service.gateway
            for n in range(3):
                await gw.run_mutation("readings:add", {"n": n})
            await eventually(lambda: service.uplink is not None and service.uplink.acked == 3)
            up = await _status_of(service)
            assert up["gateway"] == gw.store.gateway_id and up["epoch"] == gw.store.epoch
            assert up["link"]["state"] == "up" and up["link"]["upstream"] == upstream.url
            assert up["link"]["drainRate"] == pytest.approx(3 / 60)
            assert up["backlog"]["entries"] == 0 and up["backlog"]["acked"] == 3
            assert up["downlink"] is None and up["hub"] is False
            assert up["quota"] == {"maxBytes": 256 * 1024 * 1024, "overflow": "block"}
            assert up["backlog"]["dropped"] == 0 and up["backlog"]["quotaBytes"] == 0
            assert upstream.batches[-1]["newest"] == 3  # the optional field reaches the upstream

            upstream.down = True
            await gw.run_mutation("readings:add", {"n": 10})
            await gw.run_mutation("readings:add", {"n": 11})
            await eventually(lambda: service.uplink is not None and service.uplink.state == "down")
            down = await _status_of(service)
            assert down["link"]["state"] == "down"
            assert down["link"]["sinceMs"] >= up["link"]["sinceMs"]
            backlog = down["backlog"]
            assert backlog["entries"] == 2 and backlog["bytes"] > 0 and backlog["newest"] == 5
            assert backlog["acked"] == 3 and backlog["oldestAgeMs"] >= 0
            assert backlog["quotaBytes"] == backlog["bytes"]  # counted as the quota counts
            text = render(down)
            assert "backing off" in text and "2 entries" in text and "downlink  off" in text
            assert "block, 0 entries dropped" in text
    finally:
        await upstream.stop()


async def test_without_upstream_url_the_link_is_off_and_the_backlog_still_shows(
    tmp_path: Path,
) -> None:
    settings = Settings(port=0, data_dir=str(tmp_path / "d"), mqtt_broker="off")
    async with Service(write_app(tmp_path / "app"), settings) as service:
        await service.gateway.run_mutation("readings:add", {"n": 1})
        status = await _status_of(service)
    assert status["link"]["state"] == "off" and status["backlog"]["entries"] == 1
    assert "off (upstream_url is empty)" in render(status)
    assert status["quota"]["maxBytes"] == 0  # no upstream: the quota does not apply


async def test_the_status_query_is_for_admin_callers_only(tmp_path: Path) -> None:
    settings = Settings(port=0, data_dir=str(tmp_path / "d"), mqtt_broker="off")
    async with Service(write_app(tmp_path / "app"), settings) as service:
        hidden = await service.gateway.call("query", STATUS_PATH, {}, admin=False)
    assert hidden.error is not None


def test_the_drain_rate_counts_the_last_minute_only() -> None:
    now = [1000.0]
    meter = DrainMeter(window_s=60.0, clock=lambda: now[0])
    meter.record(600)
    now[0] += 30
    meter.record(60)
    assert meter.rate() == pytest.approx(11.0)
    now[0] += 31  # the first ack is now older than the window
    assert meter.rate() == pytest.approx(1.0)


async def test_entries_dropped_by_the_quota_show(tmp_path: Path) -> None:
    upstream = FakeUpstream()  # down: the outbox fills (the quota needs an upstream_url)
    upstream.down = True
    await upstream.start()
    data = tmp_path / "d"
    data.mkdir()
    (data / "upstream_key").write_text(KEY)
    settings = Settings(
        port=0,
        data_dir=str(data),
        mqtt_broker="off",
        upstream_url=upstream.url,
        outbox_max_bytes=1000,
        outbox_overflow="drop_oldest",
    )
    try:
        async with Service(write_app(tmp_path / "app"), settings) as service:
            for n in range(30):
                await service.gateway.run_mutation("readings:add", {"n": n})
            status = await _status_of(service)
    finally:
        await upstream.stop()
    backlog = status["backlog"]
    assert backlog["dropped"] > 0 and backlog["entries"] + backlog["dropped"] == 30
    assert 0 < backlog["quotaBytes"] <= 1000
    assert f"drop_oldest, {backlog['dropped']:.0f} entries dropped" in render(status)


async def test_a_refused_key_shows_as_unauthorized(tmp_path: Path) -> None:
    upstream = FakeUpstream()
    await upstream.start()
    data = tmp_path / "d"
    data.mkdir()
    (data / "upstream_key").write_text("not-the-key-" + "0" * 32)
    settings = Settings(port=0, data_dir=str(data), mqtt_broker="off", upstream_url=upstream.url)
    try:
        async with Service(write_app(tmp_path / "app"), settings) as service:
            await service.gateway.run_mutation("readings:add", {"n": 1})
            await eventually(lambda: bool(upstream.batches))
            await eventually(
                lambda: service.uplink is not None and service.uplink.state != "starting"
            )
            status = await _status_of(service)
    finally:
        await upstream.stop()
    assert status["link"]["state"] == "unauthorized" and status["backlog"]["entries"] == 1
    assert "unauthorized (check upstream_key" in render(status)
