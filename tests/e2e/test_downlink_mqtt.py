"""Downlink end to end (issue 11, sections 3 and 6): a config change made at a hub
process reaches a device over MQTT at an edge process, and after an edge outage the
changes it missed arrive once.

Two ``outpost serve`` processes on loopback: the hub (``OUTPOST_HUB=true``, the edge
registered with ``outpost gateway add``) and the edge, with its managed Mosquitto and a
publish rule on its ``.replicate("down")`` table. A paho client logged in as the device
sees each retained config the edge publishes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from edge_process_kit import EdgeProcess, add_gateway
from mqtt.mosquitto_kit import Session, session
from mqtt_gateway_kit import free_port, wait_for
from serve_process_kit import OUTPOST, ServeProcess

from firmware_clients.simulator.credentials import provision
from gateway import Gateway, Settings

DEADLINE_S = 30.0
SCHEMA = """
from gateway import define_schema, define_table, v

schema = define_schema({
    "config": define_table({"device": v.string(), "rate": v.float64()})
        .index("by_device", ["device"])
        .replicate("down"),
})
"""
FUNCTIONS = """
from gateway import mutation, query

@mutation
async def put(ctx, args):
    return await ctx.db.insert("config", {"device": args["device"], "rate": args["rate"]})

@mutation
async def rate(ctx, args):
    await ctx.db.patch(args["id"], {"rate": args["rate"]})

@query
async def configs(ctx, args):
    docs = await ctx.db.query("config").with_index("by_device").collect()
    return [{"device": d["device"], "rate": d["rate"]} for d in docs]
"""
ROUTES = """
from gateway import mqtt_router

mqtt = mqtt_router()
mqtt.publish("site/{device}/config", query="config:configs", each=True)
"""


class EdgeWithBroker(ServeProcess):
    """The edge: its managed broker on ``mqtt_port``, replicating to ``upstream_url``."""

    def __init__(self, app: Path, data: Path, upstream_url: str, mqtt_port: int, log: Path) -> None:
        super().__init__(app, data, log)
        self.upstream_url, self.mqtt_port = upstream_url, mqtt_port

    def settings(self) -> dict[str, str]:
        return {
            "OUTPOST_MQTT_BROKER": "managed",
            "OUTPOST_MQTT_PORT": str(self.mqtt_port),
            "OUTPOST_UPSTREAM_URL": self.upstream_url,
        }

    def status(self) -> dict[str, Any]:
        """``outpost status --json`` of this running edge."""
        command = [str(OUTPOST), "status", "--json", str(self.app), "--url", self.url]
        done = subprocess.run(
            [*command, "--data-dir", str(self.data)], capture_output=True, text=True, check=True
        )
        status: dict[str, Any] = json.loads(done.stdout)
        return status


def _write_app(root: Path) -> Path:
    (root / "convex").mkdir(parents=True)
    for name, text in (("schema", SCHEMA), ("config", FUNCTIONS), ("mqtt", ROUTES)):
        (root / "convex" / f"{name}.py").write_text(textwrap.dedent(text))
    return root


def _sees(device: Session, rate: float) -> None:
    """Wait until the device receives its config with ``rate``."""

    def check() -> bool:
        while not device.messages.empty():
            if json.loads(device.messages.get().payload)["rate"] == rate:
                return True
        return False

    wait_for(check, DEADLINE_S, f"the device to receive rate {rate}")


def test_a_hub_change_reaches_a_device_and_missed_changes_arrive_once(tmp_path: Path) -> None:
    app = _write_app(tmp_path / "app")
    edge_data, hub_data = tmp_path / "edge", tmp_path / "hub"

    async def first_open() -> str:
        async with Gateway.open(app, edge_data, Settings(mqtt_broker="off")) as gw:
            return gw.store.gateway_id

    edge_id = asyncio.run(first_open())
    (edge_data / "upstream_key").write_text(add_gateway(app, hub_data, edge_id))
    creds = provision(["dev1"], app, edge_data, tmp_path / "creds.json")[0]
    hub = EdgeProcess(app, hub_data, "", tmp_path / "hub.log", port=free_port(), hub=True)
    hub.start()
    edge = EdgeWithBroker(app, edge_data, hub.url, free_port(), tmp_path / "edge.log")
    try:
        edge.start()
        config_id = hub.call("mutation", "config:put", {"device": "dev1", "rate": 1.0})
        with session(edge.mqtt_port, creds["username"], creds["password"]) as device:
            device.subscribe("site/dev1/config")
            _sees(device, 1.0)
            hub.call("mutation", "config:rate", {"id": config_id, "rate": 2.0})
            _sees(device, 2.0)
        before = edge.status()["downlink"]
        assert edge.stop() == 0
        # The edge is away: three changes to dev1's config, one new device.
        for rate in (3.0, 4.0, 5.0):
            hub.call("mutation", "config:rate", {"id": config_id, "rate": rate})
        hub.call("mutation", "config:put", {"device": "dev2", "rate": 9.0})
        edge.start()
        with session(edge.mqtt_port, creds["username"], creds["password"]) as device:
            device.subscribe("site/dev1/config")
            _sees(device, 5.0)
        wait_for(lambda: edge.status()["downlink"]["caughtUp"], DEADLINE_S, "caught up")
        after = edge.status()["downlink"]
        # dev1's three changes collapse into its latest: two documents, once each.
        assert after["applied"] == 2.0, after
        assert after["tables"]["config"]["cursor"] == before["tables"]["config"]["cursor"] + 4
        assert edge.call("query", "config:configs", {}) == hub.call("query", "config:configs", {})
        assert edge.stop() == 0 and hub.stop() == 0
    except BaseException:
        print(f"edge:\n{edge.tail()}\nhub:\n{hub.tail()}")
        for process in (edge, hub):
            if process.proc is not None:
                process.kill9()
        raise
