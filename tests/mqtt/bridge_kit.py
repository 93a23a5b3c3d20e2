"""A gateway in-process with its bridge on a real Mosquitto, and a device to publish.

The broker runs on files made as the managed broker's are, with a known bridge password;
the gateway is ``Gateway.open`` on an app with MQTT routes; the bridge is started on the
broker's endpoint. Waits poll a condition against a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mosquitto_kit import Broker, current_user, running_broker

from gateway import Gateway, Settings
from gateway.mqtt.bridge import Bridge
from gateway.mqtt.broker_files import BRIDGE_USER, BrokerSpec
from gateway.mqtt.endpoint import BrokerEndpoint
from gateway.mqtt.passwords import generate_password, hash_password

DEADLINE_S = 15.0

READINGS = """
from gateway import mutation, query, v

@mutation(args={"device": v.string(), "celsius": v.float64()})
async def ingest(ctx, args):
    m = ctx.mqtt
    doc = dict(args)
    doc["topic"] = m.topic
    doc["qos"] = float(m.qos)
    if m.seq is not None:
        doc["seq"] = float(m.seq)
        doc["boot"] = float(m.boot)
    ident = await ctx.auth.get_user_identity()
    doc["subject"] = ident["subject"]
    if args["celsius"] > 1000:
        raise ValueError("too hot to be true")
    await ctx.db.insert("readings", doc)

@query(args={})
async def everything(ctx, args):
    return await ctx.db.query("readings").collect()
"""

ROUTES = """
from gateway import mqtt_router

mqtt = mqtt_router()
mqtt.ingest("sensors/{device}/temperature", "readings:ingest", payload="auto")
"""

DEVICES = ("dev-a", "dev-b")


def write_app(root: Path, **extra: str) -> Path:
    convex = root / "convex"
    convex.mkdir(parents=True)
    modules = {"readings": READINGS, "mqtt": ROUTES, **extra}
    for name, source in modules.items():
        (convex / f"{name}.py").write_text(textwrap.dedent(source))
    return root


@dataclass
class Rig:
    gateway: Gateway
    broker: Broker
    bridge: Bridge
    passwords: dict[str, str]
    endpoint: BrokerEndpoint

    @property
    def port(self) -> int:
        return self.broker.port

    async def readings(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await self.gateway.run_query("readings:everything")
        return rows

    async def dead_letters(self) -> list[dict[str, Any]]:
        def scan(tx: Any) -> list[dict[str, Any]]:
            info = tx.catalog.table("_dead_letters")
            if info is None:
                return []
            return [doc for _k, _s, doc in tx.scan(info.indexes["by_creation_time"], b"", None)]

        rows, _ = await self.gateway.store.read(scan)
        return rows

    async def restart_bridge(self) -> None:
        await self.bridge.close()
        self.bridge = Bridge(self.gateway, self.endpoint)
        await self.bridge.start()


def broker_spec(data_dir: Path, passwords: dict[str, str], port: int) -> BrokerSpec:
    return BrokerSpec(
        host="127.0.0.1",
        port=port,
        data_dir=data_dir,
        bridge_user=BRIDGE_USER,
        users={name: hash_password(pw) for name, pw in passwords.items()},
        ingest_patterns=["sensors/{device}/temperature"],
        publish_patterns=["devices/{device}/config", "site/summary"],
        run_as_user=current_user(),
    )


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, app_dir: Path | None = None) -> AsyncIterator[Rig]:
    passwords = {name: generate_password() for name in (BRIDGE_USER, *DEVICES)}
    app = app_dir or write_app(tmp_path / "app")
    work = tmp_path / "broker"
    work.mkdir()
    with running_broker(lambda port: broker_spec(work, passwords, port), work) as broker:
        endpoint = BrokerEndpoint("127.0.0.1", broker.port, BRIDGE_USER, passwords[BRIDGE_USER])
        async with Gateway.open(app, tmp_path / "data", Settings()) as gateway:
            bridge = Bridge(gateway, endpoint)
            await bridge.start()
            the_rig = Rig(gateway, broker, bridge, passwords, endpoint)
            try:
                yield the_rig
            finally:
                await the_rig.bridge.close()


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until true or fail after ``DEADLINE_S``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not await check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
