"""The whole way, as the page goes: ``outpost serve``'s ``Service`` with its managed
Mosquitto; a device added over the HTTP API with the admin key connects at once (the
broker reloaded by SIGHUP), its readings show as its activity, removed it is refused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
from bridge_kit import write_app
from mosquitto_kit import connack_until, free_port, session

from gateway import Settings
from gateway.http import load_or_create_admin_key
from gateway.service import Service

DEADLINE_S = 15.0


async def call(port: int, key: str, kind: str, path: str, args: dict[str, Any]) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{port}/api/{kind}",
            json={"path": path, "args": args, "format": "json"},
            headers={"Authorization": f"Convex {key}"},
        ) as response,
    ):
        answer = await response.json()
    assert answer["status"] == "success", answer
    return answer["value"]


async def test_a_device_added_over_http_sends_and_shows_its_activity(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings(port=0, data_dir=str(data), mqtt_port=free_port(), discovery=False)
    async with Service(write_app(tmp_path / "app"), settings) as service:
        key = load_or_create_admin_key(data)
        port = service.port
        added = await call(
            port, key, "action", "_system/dashboard/mqtt:addDevice", {"device": "s1"}
        )
        password = added["password"]
        await asyncio.to_thread(connack_until, settings.mqtt_port, "s1", password, refused=False)
        with session(settings.mqtt_port, "s1", password) as dev:
            payload = json.dumps({"celsius": 19.5}).encode()
            await asyncio.to_thread(dev.publish, "sensors/s1/temperature", payload)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        while True:
            state = await call(port, key, "query", "_system/dashboard/mqtt:devices", {})
            rows = {row["device"]: row for row in state["devices"]}
            if rows.get("s1", {}).get("messages") == 1.0:
                break
            assert loop.time() < deadline, state
            await asyncio.sleep(0.05)
        assert state["registry"] == "managed" and state["bridge"]["connected"] is True
        assert (
            rows["s1"]["registered"] is True and rows["s1"]["lastTopic"] == "sensors/s1/temperature"
        )
        await call(port, key, "action", "_system/dashboard/mqtt:removeDevice", {"device": "s1"})
        await asyncio.to_thread(connack_until, settings.mqtt_port, "s1", password, refused=True)
