"""A real Mosquitto with device accounts, and a stand-in for the gateway's acker.

The broker runs on the managed broker's own files (``gateway.mqtt.broker_files``) with
the greenhouse topics, so the devices meet the ACL they will meet in production. The
stand-in acker plays the gateway's part of the delivery contract (issue 9, section 3):
as the bridge user it receives every reading and publishes, retained, QoS 1, on
``outpost/ack/{device}`` the JSON ``{"boot": b, "seq": n}`` where n is the highest seq
such that it has received every seq 1..n of boot b. It holds an MQTT 5 session that
outlives a disconnect (as the bridge does), so readings sent while it reconnects after a
broker restart are queued for it rather than lost.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2
from mosquitto_kit import Broker, current_user, running_broker
from paho.mqtt.client import Client, ConnectFlags, MQTTMessage, MQTTv5
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.mqtt.broker_files import BRIDGE_USER, BrokerSpec
from gateway.mqtt.passwords import generate_password, hash_password

READING_TOPIC = "greenhouse/{device}/reading"
CONFIG_TOPIC = "greenhouse/{device}/config"
ACK_TOPIC = "outpost/ack/{device}"
WAIT_DEADLINE_S = 10.0
SESSION_EXPIRY_S = 3600


@dataclass
class DeviceBroker:
    """A running broker and the passwords of its device accounts."""

    broker: Broker
    passwords: dict[str, str]

    @property
    def port(self) -> int:
        return self.broker.port

    def credentials(self, device: str) -> dict[str, Any]:
        """What ``outpost device add ID --json`` prints for ``device``."""
        return {
            "device": device,
            "username": device,
            "password": self.passwords[device],
            "host": "127.0.0.1",
            "port": self.port,
        }

    def restart(self) -> None:
        """Stop (SIGTERM: Mosquitto saves its database) and start on the same port."""
        self.broker.stop()
        assert self.broker.start(), "the port was taken while the broker was down"


@contextlib.contextmanager
def device_broker(
    work: Path, devices: Sequence[str], hashed: Mapping[str, str] | None = None
) -> Iterator[DeviceBroker]:
    """A broker with the bridge's account and one per device, ACL as in production.

    ``hashed``: more accounts, as stored hashes (a password file's entries).
    """
    passwords = {name: generate_password() for name in [BRIDGE_USER, *devices]}
    users = {name: hash_password(password) for name, password in passwords.items()}
    users.update(hashed or {})

    def make_spec(port: int) -> BrokerSpec:
        return BrokerSpec(
            host="127.0.0.1",
            port=port,
            data_dir=work / "broker",
            bridge_user=BRIDGE_USER,
            users=users,
            ingest_patterns=[READING_TOPIC],
            publish_patterns=[CONFIG_TOPIC],
            run_as_user=current_user(),
        )

    with running_broker(make_spec, work) as broker:
        yield DeviceBroker(broker, passwords)


def decode(payload: bytes) -> dict[str, Any]:
    """A reading as the gateway's ``auto`` codec reads it: CBOR if it starts >= 0x80."""
    value = cbor2.loads(payload) if payload[:1] >= b"\x80" else json.loads(payload)
    assert isinstance(value, dict), f"a reading is an object, not {value!r}"
    return value


@dataclass
class Received:
    device: str
    reading: dict[str, Any]


@dataclass
class StandInAcker:
    """The gateway's acker, played by a paho client as the bridge user."""

    client: Client
    acking: bool = True
    received: list[Received] = field(default_factory=list)
    seen: dict[tuple[str, int], set[int]] = field(default_factory=dict)
    acked: dict[str, tuple[int, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_message(self, _c: Client, _u: object, message: MQTTMessage) -> None:
        device = message.topic.split("/")[1]
        reading = decode(bytes(message.payload))
        with self.lock:
            self.received.append(Received(device, reading))
            self.seen.setdefault((device, reading["boot"]), set()).add(reading["seq"])
            if self.acking:
                self._ack(device, reading["boot"])

    def _ack(self, device: str, boot: int) -> None:
        seqs = self.seen.get((device, boot), set())
        top = 0
        while top + 1 in seqs:
            top += 1
        if top and self.acked.get(device) != (boot, top):
            self.acked[device] = (boot, top)
            self.publish_ack(device, boot, top)

    def publish_ack(self, device: str, boot: int, seq: int) -> None:
        """Publish an ack as the gateway does (retained, QoS 1); any boot, any seq."""
        payload = json.dumps({"boot": boot, "seq": seq})
        self.client.publish(ACK_TOPIC.format(device=device), payload, qos=1, retain=True)

    def publish_config(self, device: str, payload: bytes) -> None:
        """Publish a device's config (retained, QoS 1); ``b""`` clears it."""
        info = self.client.publish(CONFIG_TOPIC.format(device=device), payload, 1, retain=True)
        info.wait_for_publish(WAIT_DEADLINE_S)

    def pause(self) -> None:
        """Keep receiving, stop acking (the gateway is behind)."""
        with self.lock:
            self.acking = False

    def resume(self) -> None:
        """Ack again, at once, everything received so far."""
        with self.lock:
            self.acking = True
            for device, boot in list(self.seen):
                self._ack(device, boot)

    def seqs(self, device: str) -> list[int]:
        """Every seq received from ``device``, in arrival order, duplicates included."""
        with self.lock:
            return [r.reading["seq"] for r in self.received if r.device == device]


@contextlib.contextmanager
def stand_in_acker(port: int, password: str) -> Iterator[StandInAcker]:
    """A connected, subscribed stand-in acker; stopped after."""
    client = Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="stand-in-acker",
        protocol=MQTTv5,
    )
    client.username_pw_set(BRIDGE_USER, password)
    client.reconnect_delay_set(min_delay=1, max_delay=1)
    acker = StandInAcker(client)
    subscribed: queue.Queue[bool] = queue.Queue()

    def on_connect(
        c: Client, _u: object, _f: ConnectFlags, code: ReasonCode, _p: Properties | None
    ) -> None:
        if not code.is_failure:
            c.subscribe(READING_TOPIC.format(device="+"), qos=1)

    client.on_connect = on_connect
    client.on_subscribe = lambda _c, _u, _mid, _codes, _p: subscribed.put(True)
    client.on_message = acker.on_message
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = SESSION_EXPIRY_S
    client.connect("127.0.0.1", port, clean_start=False, properties=properties)
    client.loop_start()
    try:
        subscribed.get(timeout=WAIT_DEADLINE_S)
        yield acker
    finally:
        client.disconnect()
        client.loop_stop()


def wait_until(
    condition: Callable[[], bool], what: str, step: Callable[[], object] | None = None
) -> None:
    """Poll ``condition`` (running ``step`` between polls) until true or the deadline."""
    deadline = time.monotonic() + WAIT_DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        if step is not None:
            step()
        time.sleep(0.005)
