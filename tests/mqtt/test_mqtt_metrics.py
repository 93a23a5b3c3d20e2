"""``/metrics`` counts the bridge's traffic: a real Mosquitto, a device, a scrape."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path

import aiohttp
from bridge_kit import eventually, rig
from mosquitto_kit import session
from prometheus_text_kit import Scrape, parse

from gateway.http import HttpServer
from gateway.metrics import bridge_metrics

TOPIC = "sensors/dev-a/temperature"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


async def test_a_reading_and_a_dead_letter_move_the_mqtt_counters(tmp_path: Path) -> None:
    async with rig(tmp_path) as r, HttpServer(r.gateway) as http:
        http.add_metrics(functools.partial(bridge_metrics, r.bridge))  # as the Service does
        port = await http.start("127.0.0.1", 0)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as client:

            async def scrape() -> Scrape:
                async with client.get("/metrics") as resp:
                    assert resp.status == 200
                    return parse(await resp.text())

            before = await scrape()
            assert before.value("outpost_mqtt_connected") == 1
            assert before.value("outpost_mqtt_received_total") == 0
            with session(r.port, "dev-a", r.passwords["dev-a"]) as dev:
                good = json.dumps({"celsius": 21.0, "seq": 1, "boot": 3}).encode()
                bad = json.dumps({"celsius": 5000.0, "seq": 2, "boot": 3}).encode()  # too hot
                for payload in (good, bad):
                    await asyncio.to_thread(dev.publish, TOPIC, payload)

                async def settled() -> bool:
                    return r.bridge.stats.acked == 2 and r.bridge.stats.published >= 1

                await eventually(settled, "both messages acknowledged and an ack published")
            after = await scrape()
    assert after.value("outpost_mqtt_received_total") == 2
    assert after.value("outpost_mqtt_applied_total") == 1
    assert after.value("outpost_mqtt_dead_letters_total") == 1
    assert after.value("outpost_mqtt_published_total") >= 1  # outpost/ack/dev-a
    assert after.value("outpost_mqtt_held_messages") == 0
    # The ingest mutation ran inside the bridge's writer job: the writer counted it.
    jobs = "outpost_writer_jobs_total"
    assert after.value(jobs) > before.value(jobs)
    # Every family (the gateway's, the server's, the bridge's) has its line in the docs.
    documented = DOCS.read_text()
    missing = [n for n in after.kinds if f"`{n}`" not in documented and f"`{n}{{" not in documented]
    assert not missing, f"not in docs/metrics.md: {missing}"
