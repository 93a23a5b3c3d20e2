"""The dashboard's MQTT functions on a real Mosquitto: devices with their activity, a
device added and removed (it connects, then is refused), dead letters with their
reasons, publish rules and what they last sent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from bridge_kit import ROUTES, eventually, rig, write_app
from mosquitto_kit import connack_until, current_user, running_broker, session

from gateway import Gateway, Settings
from gateway.mqtt.broker_files import BRIDGE_USER, BrokerSpec
from gateway.mqtt.passwords import generate_password, hash_password, verify_password
from gateway.mqtt.registry import list_devices, password_path

CONFIGS = """
from gateway import query

@query(args={})
async def summary(ctx, args):
    return {"readings": len(await ctx.db.query("readings").collect())}
"""

PUBLISHING = ROUTES + '\nmqtt.publish("site/summary", query="configs:summary")\n'
FIRST_PAGE = {"numItems": 50, "cursor": None}


async def admin(gw: Gateway, kind: str, path: str, args: dict[str, Any] | None = None) -> Any:
    return (await gw.call(kind, path, args or {}, admin=True)).unwrap()  # type: ignore[arg-type]


async def test_devices_dead_letters_and_publish_rules(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", configs=CONFIGS, mqtt=PUBLISHING)
    async with rig(tmp_path, app) as r:
        gw = r.gateway
        gw.dashboard.bridge = r.bridge
        with session(r.port, "dev-a", r.passwords["dev-a"]) as dev:
            for celsius in (20.5, 21.0):
                payload = json.dumps({"celsius": celsius}).encode()
                await asyncio.to_thread(dev.publish, "sensors/dev-a/temperature", payload)
            bad = b'{"celsius": "warm"}'
            await asyncio.to_thread(dev.publish, "sensors/dev-a/temperature", bad)

        async def settled() -> bool:
            return r.bridge.stats.acked >= 3

        await eventually(settled, "three messages acknowledged")
        answer = await admin(gw, "query", "_system/dashboard/mqtt:devices")
        assert answer["registry"] == "managed"
        assert answer["bridge"]["connected"] is True and answer["bridge"]["dead"] == 1.0
        rows = {row["device"]: row for row in answer["devices"]}
        dev_a = rows["dev-a"]
        assert dev_a["messages"] == 3.0 and dev_a["perMinute"] == 3.0
        assert dev_a["lastTopic"] == "sensors/dev-a/temperature" and dev_a["lastBytes"] == 19.0
        assert dev_a["lastMessageMs"] > 0
        letters = await admin(
            gw, "query", "_system/dashboard/mqtt:deadLetters", {"paginationOpts": FIRST_PAGE}
        )
        [letter] = letters["page"]
        assert letter["device"] == "dev-a" and "celsius" in letter["reason"]
        assert letter["payloadText"] == bad.decode() and letter["payload"] == bad
        other = await admin(
            gw,
            "query",
            "_system/dashboard/mqtt:deadLetters",
            {"paginationOpts": FIRST_PAGE, "device": "dev-b"},
        )
        assert other["page"] == []

        async def published() -> bool:
            rules = await admin(gw, "query", "_system/dashboard/mqtt:publishRules")
            return bool(rules) and rules[0]["lastPayload"] == '{"readings":2.0}'

        await eventually(published, "the summary republished")
        [rule] = await admin(gw, "query", "_system/dashboard/mqtt:publishRules")
        assert (rule["pattern"], rule["query"], rule["each"]) == (
            "site/summary",
            "configs:summary",
            False,
        )
        assert rule["topics"] == 1.0 and rule["lastTopic"] == "site/summary"
        assert rule["lastSentMs"] > 0
        refused = await gw.call("query", "_system/dashboard/mqtt:devices", {}, admin=False)
        assert "Could not find public function" in refused.error_message


async def test_a_device_added_from_the_dashboard_connects_and_removed_is_refused(
    tmp_path: Path,
) -> None:
    app = write_app(tmp_path / "app")
    data = tmp_path / "data"
    settings = Settings(mqtt_broker="managed")
    async with Gateway.open(app, data, settings) as gw:
        bridge_password = generate_password()

        def make_spec(port: int) -> BrokerSpec:
            users = {BRIDGE_USER: hash_password(bridge_password)}
            return BrokerSpec(
                "127.0.0.1", port, data, BRIDGE_USER, users, run_as_user=current_user()
            )

        with running_broker(make_spec, tmp_path) as broker:
            added = await admin(gw, "action", "_system/dashboard/mqtt:addDevice", {"device": "d1"})
            assert (added["device"], added["username"]) == ("d1", "d1")
            assert added["port"] == float(settings.mqtt_port)
            password = added["password"]
            hashes = password_path(data).read_text()
            assert password not in hashes
            assert list_devices(data) == ["d1"]
            assert verify_password(password, hashes.split("d1:", 1)[1].split()[0])
            broker.reload()  # not a managed broker of this process: no pidfile to signal
            await asyncio.to_thread(connack_until, broker.port, "d1", password, refused=False)
            again = await gw.call(
                "action", "_system/dashboard/mqtt:addDevice", {"device": "d1"}, admin=True
            )
            assert "already exists" in again.error_message
            listed = await admin(gw, "query", "_system/dashboard/mqtt:devices")
            assert listed["bridge"] is None
            assert listed["devices"] == [
                {
                    "device": "d1",
                    "registered": True,
                    "messages": 0.0,
                    "lastMessageMs": None,
                    "lastTopic": None,
                    "lastBytes": None,
                    "perMinute": 0.0,
                }
            ]
            await admin(gw, "action", "_system/dashboard/mqtt:removeDevice", {"device": "d1"})
            assert list_devices(data) == []
            broker.reload()
            await asyncio.to_thread(connack_until, broker.port, "d1", password, refused=True)
            for bad, words in [("a/b", "'/'"), (BRIDGE_USER, "gateway's own"), ("d1", "no device")]:
                result = await gw.call(
                    "action", "_system/dashboard/mqtt:removeDevice", {"device": bad}, admin=True
                )
                assert words in result.error_message, result.error_message
            refused = await gw.call(
                "action", "_system/dashboard/mqtt:addDevice", {"device": "d2"}, admin=False
            )
            assert "Could not find public function" in refused.error_message


async def test_no_registry_refuses_with_the_reason(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app")
    async with Gateway.open(app, tmp_path / "data", Settings(mqtt_broker="off")) as gw:
        result = await gw.call(
            "action", "_system/dashboard/mqtt:addDevice", {"device": "d1"}, admin=True
        )
        assert "mqtt_broker = managed" in result.error_message
        listed = await admin(gw, "query", "_system/dashboard/mqtt:devices")
        assert (listed["registry"], listed["devices"], listed["bridge"]) == ("none", [], None)
        assert await admin(gw, "query", "_system/dashboard/mqtt:publishRules") == []
