"""Device RPC over MQTT 5 request/response, against the real broker and gateway."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from bridge_kit import eventually, rig, write_app
from mosquitto_kit import WAIT_DEADLINE_S, Session, session
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

CALLS = """
from gateway import ConvexError, action, internal_query, mutation, query, v

@query(args={"x": v.float64()})
async def double(ctx, args):
    who = await ctx.auth.get_user_identity()
    return {"twice": args["x"] * 2, "who": who["subject"]}

@mutation(args={"note": v.string()})
async def remember(ctx, args):
    await ctx.db.insert("notes", args)
    return "kept"

@query(args={})
async def refuse(ctx, args):
    raise ConvexError({"code": "NOPE"})

@internal_query(args={})
async def secret(ctx, args):
    return 1

@action(args={})
async def act(ctx, args):
    return 1
"""


async def call(
    dev: Session, device: str, path: str, args: Any, correlation: bytes
) -> dict[str, Any]:
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = f"outpost/reply/{device}/answers"
    props.CorrelationData = correlation
    dev.client.publish(f"outpost/call/{device}/{path}", json.dumps(args), qos=1, properties=props)
    message = await asyncio.to_thread(dev.messages.get, timeout=WAIT_DEADLINE_S)
    assert message.topic == f"outpost/reply/{device}/answers"
    assert message.properties.CorrelationData == correlation
    answer: dict[str, Any] = json.loads(message.payload)
    return answer


async def test_a_device_calls_queries_and_mutations_as_itself(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", calls=CALLS)
    async with rig(tmp_path, app) as r:
        with session(r.port, "dev-a", r.passwords["dev-a"]) as dev:
            dev.subscribe("outpost/reply/dev-a/#")
            got = await call(dev, "dev-a", "calls:double", {"x": 4}, b"c1")
            assert got == {
                "status": "success",
                "value": {"twice": 8.0, "who": "dev-a"},
                "logLines": [],
            }
            got = await call(dev, "dev-a", "calls:remember", {"note": "hi"}, b"c2")
            assert got["value"] == "kept"
            got = await call(dev, "dev-a", "calls:refuse", {}, b"c3")
            assert got["status"] == "error" and got["errorData"] == {"code": "NOPE"}
            for path, words in (
                ("calls:secret", "Could not find public function"),
                ("calls:act", "is an action"),
                ("calls:missing", "Could not find public function"),
            ):
                got = await call(dev, "dev-a", path, {}, b"c4")
                assert got["status"] == "error" and words in got["errorMessage"], got
            got = await call(dev, "dev-a", "calls:double", {"x": "four"}, b"c5")
            assert got["status"] == "error" and "ArgumentValidationError" in got["errorMessage"]

        async def all_counted() -> bool:
            return r.bridge.stats.answered == 7

        await eventually(all_counted, "seven calls answered")


async def test_an_mqtt_311_device_gets_its_answer_in_its_reply_tree(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", calls=CALLS)
    async with rig(tmp_path, app) as r:
        with session(r.port, "dev-b", r.passwords["dev-b"]) as dev:
            dev.subscribe("outpost/reply/dev-b/#")
            dev.client.publish("outpost/call/dev-b/calls:double", b'{"x": 1}', qos=1)
            message = await asyncio.to_thread(dev.receive)
            assert message.topic == "outpost/reply/dev-b/calls:double"
            assert json.loads(message.payload)["value"]["twice"] == 2.0
