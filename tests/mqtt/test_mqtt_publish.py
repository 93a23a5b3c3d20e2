"""Publish rules: live query results reach devices as retained MQTT messages."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from bridge_kit import ROUTES, rig, write_app
from mosquitto_kit import Session, session

DEVICES = """
from gateway import mutation, query, v

async def _find(ctx, device):
    for doc in await ctx.db.query("configs").collect():
        if doc["device"] == device:
            return doc
    return None

@mutation(args={"device": v.string(), "interval": v.float64()})
async def configure(ctx, args):
    doc = await _find(ctx, args["device"])
    if doc is None:
        await ctx.db.insert("configs", args)
    else:
        await ctx.db.patch("configs", doc["_id"], {"interval": args["interval"]})

@mutation(args={"device": v.string()})
async def forget(ctx, args):
    doc = await _find(ctx, args["device"])
    if doc is not None:
        await ctx.db.delete("configs", doc["_id"])

@query(args={})
async def configs(ctx, args):
    docs = await ctx.db.query("configs").collect()
    return [{"device": d["device"], "interval": d["interval"]} for d in docs]

@query(args={})
async def summary(ctx, args):
    return {"configured": len(await ctx.db.query("configs").collect())}
"""

PUBLISH_ROUTES = (
    ROUTES
    + """
mqtt.publish("devices/{device}/config", query="devices:configs", each=True)
mqtt.publish("site/summary", query="devices:summary")
"""
)


def app(tmp_path: Path) -> Path:
    return write_app(tmp_path / "app", devices=DEVICES, mqtt=PUBLISH_ROUTES)


async def next_message(sub: Session) -> tuple[str, Any]:
    message = await asyncio.to_thread(sub.receive)
    return message.topic, json.loads(message.payload) if message.payload else None


async def test_each_element_goes_to_its_device_and_changes_follow(tmp_path: Path) -> None:
    async with rig(tmp_path, app(tmp_path)) as r:
        with session(r.port, "dev-a", r.passwords["dev-a"]) as dev:
            dev.subscribe("devices/dev-a/config")
            await r.gateway.run_mutation("devices:configure", {"device": "dev-a", "interval": 5})
            assert await next_message(dev) == (
                "devices/dev-a/config",
                {"device": "dev-a", "interval": 5.0},
            )
            await r.gateway.run_mutation("devices:configure", {"device": "dev-b", "interval": 7})
            await r.gateway.run_mutation("devices:configure", {"device": "dev-a", "interval": 9})
            # dev-b's config is not dev-a's business: the next message is dev-a's change.
            assert await next_message(dev) == (
                "devices/dev-a/config",
                {"device": "dev-a", "interval": 9.0},
            )
            await r.gateway.run_mutation("devices:forget", {"device": "dev-a"})
            assert await next_message(dev) == ("devices/dev-a/config", None)
        assert r.bridge.publisher.topics == {"devices/dev-b/config", "site/summary"}


async def test_a_whole_result_goes_to_one_topic_every_device_reads(tmp_path: Path) -> None:
    async with rig(tmp_path, app(tmp_path)) as r:
        with session(r.port, "dev-b", r.passwords["dev-b"]) as dev:
            dev.subscribe("site/summary")
            assert await next_message(dev) == ("site/summary", {"configured": 0})
            await r.gateway.run_mutation("devices:configure", {"device": "dev-a", "interval": 5})
            assert await next_message(dev) == ("site/summary", {"configured": 1})


async def test_a_new_subscriber_gets_the_retained_value(tmp_path: Path) -> None:
    async with rig(tmp_path, app(tmp_path)) as r:
        with session(r.port, "dev-b", r.passwords["dev-b"]) as first:
            first.subscribe("devices/dev-b/config")
            await r.gateway.run_mutation("devices:configure", {"device": "dev-b", "interval": 3})
            await next_message(first)  # now the broker holds it
        with session(r.port, "dev-b", r.passwords["dev-b"]) as dev:
            dev.subscribe("devices/dev-b/config")
            message = await asyncio.to_thread(dev.receive)
            assert message.retain and json.loads(message.payload)["interval"] == 3.0


async def test_after_a_restart_topics_that_vanished_meanwhile_are_cleared(tmp_path: Path) -> None:
    async with rig(tmp_path, app(tmp_path)) as r:
        await r.gateway.run_mutation("devices:configure", {"device": "dev-b", "interval": 3})
        with session(r.port, "dev-b", r.passwords["dev-b"]) as dev:
            dev.subscribe("devices/dev-b/config")
            assert (await next_message(dev))[1] == {"device": "dev-b", "interval": 3.0}
            await r.bridge.close()
            await r.gateway.run_mutation("devices:forget", {"device": "dev-b"})
            await r.restart_bridge()
            assert await next_message(dev) == ("devices/dev-b/config", None)
        assert (tmp_path / "data" / "mqtt-published.json").exists()
