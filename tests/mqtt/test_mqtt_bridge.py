"""The bridge against a real Mosquitto and an in-process gateway: messages in, once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cbor2
import pytest
from bridge_kit import ROUTES, broker_spec, eventually, rig, write_app
from mosquitto_kit import Broker, Session, free_port, session

from gateway import Gateway, Settings
from gateway.mqtt.bridge import MAX_HELD, RECEIVE_MAXIMUM, Bridge, BridgeError
from gateway.mqtt.broker_files import BRIDGE_USER, write_broker_files
from gateway.mqtt.codecs import MAX_PAYLOAD_BYTES
from gateway.mqtt.endpoint import BrokerEndpoint
from gateway.mqtt.passwords import generate_password

TOPIC = "sensors/{}/temperature"
OUTPOST = str(Path(sys.executable).parent / "outpost")


async def publish(device: Session, topic: str, payload: bytes, *, retain: bool = False) -> None:
    await asyncio.to_thread(device.publish, topic, payload, retain=retain)


async def test_readings_land_once_with_ctx_mqtt(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        with session(r.port, "dev-a", r.passwords["dev-a"]) as dev:
            await publish(
                dev, TOPIC.format("dev-a"), cbor2.dumps({"celsius": 21.5, "seq": 1, "boot": 7})
            )
            await publish(
                dev,
                TOPIC.format("dev-a"),
                json.dumps({"celsius": 22, "seq": 2, "boot": 7}).encode(),
            )

            async def two() -> bool:
                return len(await r.readings()) == 2

            await eventually(two, "two readings")
        rows = sorted(await r.readings(), key=lambda d: d["seq"])
        assert [(d["celsius"], d["seq"], d["boot"]) for d in rows] == [
            (21.5, 1.0, 7.0),
            (22.0, 2.0, 7.0),
        ]
        assert {d["device"] for d in rows} == {"dev-a"}
        assert {d["subject"] for d in rows} == {"dev-a"}
        assert {d["topic"] for d in rows} == {TOPIC.format("dev-a")}
        assert {d["qos"] for d in rows} == {1.0}
        assert r.bridge.stats.applied == 2


async def test_a_resent_reading_is_applied_once_and_the_ack_covers_it(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        with session(r.port, "dev-a", r.passwords["dev-a"]) as dev:
            dev.subscribe("outpost/ack/dev-a")
            for seq in (1, 2, 2, 1, 3):
                body = cbor2.dumps({"celsius": float(seq), "seq": seq, "boot": 5})
                await publish(dev, TOPIC.format("dev-a"), body)

            async def acked() -> bool:
                return r.bridge.stats.applied + r.bridge.stats.duplicates == 5

            await eventually(acked, "five messages settled")
            acks = []
            while not acks or acks[-1] != {"boot": 5, "seq": 3}:
                message = await asyncio.to_thread(dev.receive)
                assert message.retain or message.topic == "outpost/ack/dev-a"
                acks.append(json.loads(message.payload))
        assert sorted(d["seq"] for d in await r.readings()) == [1.0, 2.0, 3.0]
        assert r.bridge.stats.duplicates == 2


async def test_ack_waits_for_a_gap_and_covers_it_once_filled(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        with session(r.port, "dev-b", r.passwords["dev-b"]) as dev:
            dev.subscribe("outpost/ack/dev-b")
            for seq in (1, 3):
                await publish(
                    dev, TOPIC.format("dev-b"), cbor2.dumps({"celsius": 1.0, "seq": seq, "boot": 9})
                )

            async def two() -> bool:
                return r.bridge.stats.applied == 2

            await eventually(two, "two applied")
            assert json.loads((await asyncio.to_thread(dev.receive)).payload) == {
                "boot": 9,
                "seq": 1,
            }
            await publish(
                dev, TOPIC.format("dev-b"), cbor2.dumps({"celsius": 1.0, "seq": 2, "boot": 9})
            )
            assert json.loads((await asyncio.to_thread(dev.receive)).payload) == {
                "boot": 9,
                "seq": 3,
            }


async def test_every_bad_message_becomes_a_dead_letter_and_the_stream_goes_on(
    tmp_path: Path,
) -> None:
    bad = [
        (b"\xff\x00 not cbor nor json", "value"),  # raw bytes: the mutation's validator refuses
        (json.dumps({"celsius": "warm"}).encode(), "celsius"),
        (json.dumps({"celsius": 5000.0, "seq": 4, "boot": 1}).encode(), "too hot"),
        (json.dumps({"celsius": 1.0, "device": "dev-b"}).encode(), "topic says"),
        (json.dumps({"celsius": 1.0, "seq": 0}).encode(), "seq counts from 1"),
        (json.dumps({"celsius": 2**60}).encode(), "2^53"),
        (b"{" + b" " * (MAX_PAYLOAD_BYTES + 10) + b"}", "over the"),
    ]
    async with rig(tmp_path) as r:
        with session(r.port, "dev-a", r.passwords["dev-a"]) as dev:
            for body, _ in bad:
                await publish(dev, TOPIC.format("dev-a"), body)
            await publish(dev, TOPIC.format("dev-a"), json.dumps({"celsius": 3.0}).encode())

            async def all_settled() -> bool:
                return r.bridge.stats.acked == len(bad) + 1

            await eventually(all_settled, "every message acknowledged")
        letters = await r.dead_letters()
        assert len(letters) == len(bad)
        for (body, words), letter in zip(bad, letters, strict=True):
            assert words in letter["reason"], (words, letter["reason"])
            assert letter["topic"] == TOPIC.format("dev-a")
            assert letter["device"] == "dev-a"
            assert letter["size"] == float(len(body))
        assert [d["celsius"] for d in await r.readings()] == [3.0]
        # `outpost data _dead_letters` lists them while the gateway runs.
        listed = await asyncio.to_thread(
            subprocess.run,
            [
                OUTPOST,
                "data",
                "_dead_letters",
                "--app",
                str(tmp_path / "app"),
                "--data-dir",
                str(tmp_path / "data"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        lines = [json.loads(line) for line in listed.stdout.splitlines()]
        assert sorted(line["reason"] for line in lines) == sorted(d["reason"] for d in letters)


async def test_messages_sent_while_the_bridge_is_down_arrive_after(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.bridge.close()
        with session(r.port, "dev-a", r.passwords["dev-a"]) as dev:
            for seq in range(1, 21):
                await publish(
                    dev, TOPIC.format("dev-a"), cbor2.dumps({"celsius": 1.0, "seq": seq, "boot": 1})
                )
        await r.restart_bridge()

        async def twenty() -> bool:
            return len(await r.readings()) == 20

        await eventually(twenty, "the queued readings")
        assert sorted(d["seq"] for d in await r.readings()) == [float(s) for s in range(1, 21)]


async def test_a_retained_reading_is_not_ingested_again(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        with session(r.port, "dev-a", r.passwords["dev-a"]) as dev:
            await publish(
                dev, TOPIC.format("dev-a"), json.dumps({"celsius": 4.0}).encode(), retain=True
            )

            async def one() -> bool:
                return len(await r.readings()) == 1

            await eventually(one, "the live copy")
        await r.restart_bridge()
        with session(r.port, "dev-a", r.passwords["dev-a"]) as dev:
            await publish(dev, TOPIC.format("dev-a"), json.dumps({"celsius": 5.0}).encode())

            async def two() -> bool:
                return len(await r.readings()) == 2

            await eventually(two, "the next reading")
        assert sorted(d["celsius"] for d in await r.readings()) == [4.0, 5.0]


async def test_a_flood_queued_while_the_bridge_is_down_arrives_once(tmp_path: Path) -> None:
    per_device = 2_000
    async with rig(tmp_path) as r:
        await r.bridge.close()
        for device in ("dev-a", "dev-b"):
            with session(r.port, device, r.passwords[device]) as dev:
                infos = [
                    dev.client.publish(
                        TOPIC.format(device),
                        cbor2.dumps({"celsius": 1.0, "seq": seq, "boot": 3}),
                        qos=1,
                    )
                    for seq in range(1, per_device + 1)
                ]
                for info in infos:
                    await asyncio.to_thread(info.wait_for_publish, 30)
        await r.restart_bridge()

        async def all_in() -> bool:
            return r.bridge.stats.acked == 2 * per_device

        await eventually(all_in, "the whole flood acknowledged")
        rows = await r.readings()
        assert len(rows) == 2 * per_device
        assert len({(d["device"], d["seq"]) for d in rows}) == 2 * per_device
        # Mosquitto 2.0.11 resuming a session with a queue sends past the Receive
        # Maximum (RECEIVE_MAXIMUM); the bridge's own bound is what holds.
        assert RECEIVE_MAXIMUM < MAX_HELD
        assert 0 < r.bridge.stats.peak_held <= MAX_HELD


async def test_a_qos0_flood_is_held_within_the_bound(tmp_path: Path) -> None:
    count = 5_000
    async with rig(tmp_path) as r:
        with session(r.port, "dev-a", r.passwords["dev-a"]) as dev:
            body = json.dumps({"celsius": 2.0}).encode()
            for _ in range(count):
                dev.client.publish(TOPIC.format("dev-a"), body, qos=0)

            async def all_in() -> bool:
                return r.bridge.stats.received == count and not r.bridge.pending

            await eventually(all_in, "the QoS 0 flood settled")
        assert len(await r.readings()) == count
        assert r.bridge.stats.peak_held <= MAX_HELD


async def test_a_refused_payload_with_counters_is_covered_by_the_ack_once(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        with session(r.port, "dev-a", r.passwords["dev-a"]) as dev:
            dev.subscribe("outpost/ack/dev-a")
            refused = [
                {"celsius": 1.0, "$x": 1, "seq": 1, "boot": 4},  # a field name Convex refuses
                {"celsius": 1.0, "device": "dev-b", "seq": 2, "boot": 4},  # another's name
            ]
            for body in [*refused, *refused]:  # each sent twice: the resend is a duplicate
                await publish(dev, TOPIC.format("dev-a"), json.dumps(body).encode())
            acks = []
            while not acks or acks[-1] != {"boot": 4, "seq": 2}:
                acks.append(json.loads((await asyncio.to_thread(dev.receive)).payload))

            async def settled() -> bool:
                return r.bridge.stats.acked == 4

            await eventually(settled, "four messages acknowledged")
        letters = await r.dead_letters()
        assert [(d["seq"], d["boot"]) for d in letters] == [(1.0, 4.0), (2.0, 4.0)]
        assert "$x" in letters[0]["reason"] and "topic says" in letters[1]["reason"]
        assert r.bridge.stats.duplicates == 2


async def test_qos2_is_taken_as_qos1_and_applied_once(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        with session(r.port, "dev-a", r.passwords["dev-a"]) as dev:
            body = cbor2.dumps({"celsius": 7.0, "seq": 1, "boot": 1})
            info = dev.client.publish(TOPIC.format("dev-a"), body, qos=2)
            await asyncio.to_thread(info.wait_for_publish, 10)

            async def one() -> bool:
                return len(await r.readings()) == 1

            await eventually(one, "the QoS 2 reading")
        assert [d["qos"] for d in await r.readings()] == [1.0]


async def test_a_reload_follows_the_new_routes(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        # The new version routes probes/{device}/v too; the broker's ACL lets devices
        # publish there (what the managed broker's reload does for outpost dev).
        spec = replace(
            r.broker.spec, ingest_patterns=[*r.broker.spec.ingest_patterns, "probes/{device}/v"]
        )
        write_broker_files(spec)
        r.broker.reload()
        (tmp_path / "app" / "convex" / "mqtt.py").write_text(
            ROUTES + 'mqtt.ingest("probes/{device}/v", "readings:ingest", payload="json")\n'
        )
        await r.gateway.reload_app()
        with session(r.port, "dev-b", r.passwords["dev-b"]) as dev:

            async def arrived() -> bool:
                # Sent until one arrives: the bridge's SUBSCRIBE may still be on its way,
                # and a broker keeps nothing for a subscription it does not have yet.
                await publish(dev, "probes/dev-b/v", json.dumps({"celsius": 9.0}).encode())
                await asyncio.sleep(0.05)
                return len(await r.readings()) > 0

            await eventually(arrived, "a reading on the new route")
        assert {d["topic"] for d in await r.readings()} == {"probes/dev-b/v"}


async def test_wrong_bridge_credentials_stop_the_start(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        wrong = replace(r.endpoint, password="not-the-password")
        bridge = Bridge(r.gateway, wrong)
        try:
            with pytest.raises(BridgeError, match="refused the gateway's credentials"):
                await bridge.start()
        finally:
            await bridge.close()  # a no-op after the refused start closed it


async def test_a_broker_that_is_not_up_yet_is_waited_for(tmp_path: Path) -> None:
    passwords = {name: generate_password() for name in (BRIDGE_USER, "dev-a")}
    work = tmp_path / "broker"
    work.mkdir()
    spec = broker_spec(work, passwords, free_port())
    endpoint = BrokerEndpoint("127.0.0.1", spec.port, BRIDGE_USER, passwords[BRIDGE_USER])
    async with Gateway.open(write_app(tmp_path / "app"), tmp_path / "data", Settings()) as gw:
        bridge = Bridge(gw, endpoint)
        await bridge.start(connect_deadline_s=0.2)  # nobody there: the start goes on
        assert not bridge.connected
        write_broker_files(spec)
        broker = Broker(spec, work / "mosquitto.log")
        try:
            assert broker.start(), "the port was taken meanwhile"

            async def up() -> bool:
                return bridge.connected

            await eventually(up, "the bridge to connect once the broker is there")
            with session(spec.port, "dev-a", passwords["dev-a"]) as dev:
                await publish(dev, TOPIC.format("dev-a"), json.dumps({"celsius": 1.0}).encode())

                async def stored() -> bool:
                    return bridge.stats.applied == 1

                await eventually(stored, "the reading")
        finally:
            await bridge.close()
            broker.stop()
