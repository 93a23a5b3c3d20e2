"""The downlink inside the edge's lifecycle: started by the replication step with the
uplink, shown by ``outpost status``, stopped with nothing left behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from edge_upstream_kit import eventually
from replication.downlink_kit import served_hub, write_app
from replication.hub_kit import KEY

from gateway import Gateway
from gateway.cli.status_text import render
from gateway.config import Settings
from gateway.errors import ConfigError
from gateway.replication.downlink_contract import CONVEX_CHANGES_PATH, HUB_CHANGES_PATH
from gateway.replication.edge import PATHS
from gateway.replication.edge_status import STATUS_PATH
from gateway.service import Service


async def _edge_id(app: Path, data: Path) -> str:
    async with Gateway.open(app, data) as gw:
        return gw.store.gateway_id


async def test_the_service_pulls_down_tables_and_status_shows_it(tmp_path: Path) -> None:
    app, data = write_app(tmp_path / "edge"), tmp_path / "edgedata"
    edge_id = await _edge_id(app, data)
    (data / "upstream_key").write_text(KEY)
    async with served_hub(tmp_path, edge_id) as hub:
        await hub.gw.run_mutation("config:put", {"device": "a", "rate": 1.0})
        settings = Settings(port=0, data_dir=str(data), mqtt_broker="off", upstream_url=hub.url)
        async with Service(app, settings) as service:
            link = service.downlink
            assert link is not None and link.tables == ["config"]
            await eventually(lambda: link.applied == 1 and link.caught_up.get("config", False))
            status: dict[str, Any] = await service.gateway.run_query(STATUS_PATH)
            down = status["downlink"]
            assert down["state"] == "up" and down["caughtUp"] and down["lagMs"] is None
            assert down["tables"] == {"config": {"cursor": 1.0}} and down["applied"] == 1.0
            assert status["link"]["state"] in ("starting", "up")  # the uplink is still there
            assert "caught up; cursors config 1" in render(status)
            assert await service.gateway.run_query("config:rates", {}) == {"a": 1.0}
        assert service.downlink is not None and service.downlink._task is None  # noqa: SLF001


async def test_a_hub_runs_no_downlink(tmp_path: Path) -> None:
    app, data = write_app(tmp_path / "edge"), tmp_path / "edgedata"
    edge_id = await _edge_id(app, data)
    (data / "upstream_key").write_text(KEY)
    async with served_hub(tmp_path, edge_id) as hub:
        settings = Settings(
            port=0, data_dir=str(data), mqtt_broker="off", upstream_url=hub.url, hub=True
        )
        async with Service(app, settings) as service:
            assert service.uplink is not None and service.downlink is None


def test_upstream_kind_picks_the_paths_and_refuses_others() -> None:
    assert PATHS["outpost"] == ("_system/replication:push", HUB_CHANGES_PATH)
    assert PATHS["convex"] == ("outpost:push", CONVEX_CHANGES_PATH)
    assert Settings(upstream_kind="convex").upstream_kind == "convex"
    with pytest.raises(ConfigError, match="upstream_kind must be outpost or convex"):
        Settings(upstream_kind="hub")
