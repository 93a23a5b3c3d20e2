"""The dashboard with a real Mosquitto: a device's message shows up live in Data and in
its chart, a payload the app refuses shows up as a dead letter with its reason, and a
device added from the page gets credentials once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bridge_kit import ROUTES, rig, write_app
from dashboard.browser_kit import browser
from dashboard.dashboard_kit import log_in, rows_of
from mosquitto_kit import session

from gateway.http import HttpServer

SCHEMA = """
from gateway import define_schema, define_table, v

schema = define_schema({
    "readings": define_table({
        "device": v.string(), "celsius": v.float64(), "topic": v.string(), "qos": v.float64(),
        "seq": v.optional(v.float64()), "boot": v.optional(v.float64()), "subject": v.string(),
    }).index("by_device", ["device"]),
})
"""
TOPIC = "sensors/dev-a/temperature"


async def test_mqtt_message_live_dead_letter_and_a_new_device(
    chromium_url: str, tmp_path: Path
) -> None:
    app = write_app(tmp_path / "app", schema=SCHEMA, mqtt=ROUTES)
    async with rig(tmp_path, app) as r, HttpServer(r.gateway) as http:
        r.gateway.dashboard.bridge = r.bridge
        port = await http.start("127.0.0.1", 0)
        url = f"http://127.0.0.1:{port}/dashboard/"
        key = http.slot.admin_key
        assert key is not None
        async with browser(chromium_url, tmp_path) as chrome:
            tab = await chrome.tab(url + "#data")
            await log_in(tab, key)
            await tab.until("document.querySelector('#tables li[data-table=readings]')", "readings")
            with session(r.port, "dev-a", r.passwords["dev-a"]) as dev:
                for celsius in (20.5, 21.5):
                    payload = json.dumps({"celsius": celsius}).encode()
                    await asyncio.to_thread(dev.publish, TOPIC, payload)
                await tab.until(f"{rows_of('dev-a')} === 2", "the device's readings, live")
                await tab.screenshot("mqtt-data")
                await asyncio.to_thread(dev.publish, TOPIC, b'{"celsius": "warm"}')

            await tab.eval("location.hash = '#devices'")
            reason = await tab.until(
                "document.querySelector('#dead-letters td.reason')?.textContent", "a dead letter"
            )
            assert "celsius" in reason, reason
            await tab.until(
                "document.querySelector('#devices tr[data-device=dev-a]')?.cells[2].textContent === '3'",
                "dev-a's three messages",
            )
            await tab.until(
                "document.querySelector('#charts canvas[data-device=dev-a]')", "dev-a's chart"
            )
            await tab.type("#device-name", "dev-c")
            await tab.click("#device-add")
            password = await tab.until(
                "document.querySelector('#device-credentials dd[data-key=password]')?.textContent",
                "the new device's password",
            )
            assert len(password) >= 16, password
            await tab.screenshot("devices")
