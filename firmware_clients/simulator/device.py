"""One simulated device: readings with (boot, seq), kept until the gateway's ack covers them.

The same contract as the board clients (issue 9, section 3): each reading carries ``seq``
(1, 2, 3 ... in a boot) and ``boot`` (random, < 2^31); the gateway publishes, retained,
on ``outpost/ack/{device}`` the JSON ``{"boot": b, "seq": n}`` once every reading of
boot b with seq <= n is durable. A device keeps its readings (in memory: the queue
outlives every reconnect, as a board's flash would) until an ack of its boot covers them
and sends every uncovered one again, oldest first, after each (re)connect. An ack of
another boot covers nothing. The queue is bounded: when full the oldest reading is
dropped and counted.

A device does no I/O of its own: the fleet's single thread calls ``tick`` and hands it
its socket's read and write events (paho's external-loop API: ``loop_read``,
``loop_write``, ``loop_misc``), so every paho callback runs on that thread.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage, MQTTv311
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from firmware_clients.simulator.codec import encoder

log = logging.getLogger("firmware_clients.simulator")

ACK_TOPIC = "outpost/ack/{device}"
MAX_BOOT = 2**31 - 1
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0
MISC_INTERVAL_S = 1.0  # paho's keepalive bookkeeping (loop_misc) needs no more
CONNACK_DEADLINE_S = 10.0  # a broker that accepts TCP but never answers CONNECT

ReadingFactory = Callable[[random.Random], dict[str, Any]]


def greenhouse_reading(rng: random.Random) -> dict[str, Any]:
    """A reading the greenhouse example ingests: celsius and humidity."""
    return {"celsius": round(rng.gauss(21.0, 3.0), 2), "humidity": round(rng.uniform(30, 80), 1)}


@dataclass(frozen=True)
class DeviceOptions:
    """What every device of a fleet shares; ``Fleet`` documents each field."""

    host: str
    port: int
    topic: str
    config_topic: str | None
    codec: str
    rate_hz: float
    max_readings: int | None
    window: int
    max_queue: int
    disconnect_every_s: float | None
    reconnect_delay_s: float
    time_field: str | None
    keepalive_s: int
    inflight: int
    make_reading: ReadingFactory = field(default=greenhouse_reading)
    resend_after_s: float = 5.0  # no ack progress this long: send the uncovered again


class SimDevice:
    """A device's state and its current paho client (None while offline)."""

    def __init__(
        self,
        device_id: str,
        password: str,
        options: DeviceOptions,
        rng: random.Random,
        skew_s: float,
    ) -> None:
        self.device_id, self.password, self.options = device_id, password, options
        self.rng, self.skew_s = rng, skew_s
        self.encode = encoder(options.codec)
        self.topic = options.topic.replace("{device}", device_id)
        self.config_topic = options.config_topic and options.config_topic.replace(
            "{device}", device_id
        )
        self.ack_topic = ACK_TOPIC.replace("{device}", device_id)
        self.boot = rng.randint(1, MAX_BOOT)
        self.seq = 0  # the newest reading made
        self.queue: OrderedDict[int, bytes] = OrderedDict()  # uncovered readings
        self.covered = 0  # the newest seq an ack of this boot covered
        self.published = 0  # the newest seq handed to the broker at least once
        self.sends = self.resent = self.dropped = self.disconnects = 0
        self.configs: list[Any] = []
        self.client: Client | None = None
        self.online = False  # CONNACK accepted on the current client
        self.lost = False  # the current client's connection ended (set in callbacks)
        self.drop_requested = False
        self.readings_stopped = False
        self.unsent: deque[int] = deque()  # queued seqs not yet sent on this connection
        now = time.monotonic()
        self.next_reading_at = now
        self.retry_at = now
        self.retry_s = RETRY_FIRST_S
        self.next_misc_at = now
        self.progress_at = now  # when the ack last moved (or all was not yet sent)
        self.connack_deadline = now
        self.disconnect_at = self._next_disconnect(now)

    # --- the fleet thread's calls -------------------------------------------------------

    def tick(self, now: float) -> None:
        """Make due readings, (re)connect if due, send what is unsent, drop if asked."""
        self._sample(now)
        if self.client is None:
            if now >= self.retry_at:
                self._connect(now)
            return
        if self.lost or (not self.online and now >= self.connack_deadline):
            self.disconnects += self.online  # a refused CONNACK is not a disconnect
            self._drop(now, self._backoff())
        elif self.drop_requested or now >= self.disconnect_at:
            self.disconnects += 1
            self._drop(now, self.options.reconnect_delay_s)
            self.disconnect_at = self._next_disconnect(now)
        else:
            if self.online:
                self._resend_if_stalled(now)
                self._pump()
            if now >= self.next_misc_at:
                self.next_misc_at = now + MISC_INTERVAL_S
                self.client.loop_misc()

    def next_deadline(self) -> float:
        """When ``tick`` next has something to do by the clock."""
        deadlines = [self.disconnect_at]
        if self._sampling() and math.isfinite(self.options.rate_hz):
            deadlines.append(self.next_reading_at)
        if self.client is None:
            deadlines.append(self.retry_at)
        return min(deadlines)

    def socket_fd(self) -> int | None:
        sock = self.client.socket() if self.client is not None else None
        return sock.fileno() if sock is not None else None

    def want_write(self) -> bool:
        return self.client is not None and self.client.want_write()

    def on_readable(self) -> None:
        if self.client is not None:
            self.client.loop_read()

    def on_writable(self) -> None:
        if self.client is not None:
            self.client.loop_write()

    def close(self) -> None:
        """Say DISCONNECT if online and close the socket; the queue is kept."""
        client, self.client = self.client, None
        if client is None:
            return
        if self.online and not self.lost:
            client.disconnect()  # written at once: no loop thread, not in a callback
        self._close_socket(client)
        self.online = False

    # --- readings -----------------------------------------------------------------------

    def _sampling(self) -> bool:
        limit = self.options.max_readings
        return not self.readings_stopped and (limit is None or self.seq < limit)

    def _sample(self, now: float) -> None:
        if math.isinf(self.options.rate_hz):  # as fast as the gateway acks
            while self._sampling() and len(self.queue) < self.options.window:
                self._make()
            return
        while self._sampling() and now >= self.next_reading_at:
            self._make()
            self.next_reading_at += 1.0 / self.options.rate_hz

    def _make(self) -> None:
        self.seq += 1
        reading = self.options.make_reading(self.rng)
        if self.options.time_field is not None:  # clock skew: this device's clock is off
            reading[self.options.time_field] = int((time.time() + self.skew_s) * 1000)
        reading["seq"], reading["boot"] = self.seq, self.boot
        if len(self.queue) >= self.options.max_queue:
            self.queue.popitem(last=False)
            self.dropped += 1
        self.queue[self.seq] = self.encode(reading)
        if self.online:
            self.unsent.append(self.seq)

    def _resend_if_stalled(self, now: float) -> None:
        """Everything sent, nothing covered for ``resend_after_s``: send it all again.
        A broker PUBACKs a reading and may lose it in a crash before saving it; only the
        ack says the gateway has it."""
        if not self.queue or self.unsent:
            self.progress_at = now
            return
        if now - self.progress_at >= self.options.resend_after_s:
            self.unsent = deque(self.queue)
            self.progress_at = now

    def _pump(self) -> None:
        assert self.client is not None
        while self.unsent:
            seq = self.unsent.popleft()
            payload = self.queue.get(seq)
            if payload is None:
                continue  # covered or dropped since
            self.client.publish(self.topic, payload, qos=1)
            self.sends += 1
            if seq <= self.published:
                self.resent += 1
            self.published = max(self.published, seq)

    # --- the connection -----------------------------------------------------------------

    def _connect(self, now: float) -> None:
        client = Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.device_id,
            protocol=MQTTv311,
            clean_session=True,
        )
        client.username_pw_set(self.device_id, self.password)
        client.max_inflight_messages_set(self.options.inflight)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.online = self.lost = self.drop_requested = False
        try:
            client.connect(self.options.host, self.options.port, self.options.keepalive_s)
        except OSError as exc:
            log.debug("%s: connect failed: %s", self.device_id, exc)
            self._close_socket(client)
            self.retry_at = now + self._backoff()
            return
        self.client = client
        self.connack_deadline = now + CONNACK_DEADLINE_S
        self.disconnect_at = self._next_disconnect(now)  # counted from each connect

    def _drop(self, now: float, delay_s: float) -> None:
        """Lose the connection abruptly (no DISCONNECT), as a device losing its network."""
        client, self.client = self.client, None
        if client is not None:
            self._close_socket(client)
        self.online = False
        self.retry_at = now + delay_s

    @staticmethod
    def _close_socket(client: Client) -> None:
        sock = client.socket()
        if sock is not None:
            sock.close()

    def _backoff(self) -> float:
        delay, self.retry_s = self.retry_s, min(self.retry_s * 2, RETRY_MAX_S)
        return delay

    def _next_disconnect(self, now: float) -> float:
        mean = self.options.disconnect_every_s
        return now + self.rng.expovariate(1.0 / mean) if mean else math.inf

    # --- paho callbacks (on the fleet thread, inside loop_read/loop_write) -------------------

    def _on_connect(
        self, client: Client, _u: object, _f: ConnectFlags, code: ReasonCode, _p: Properties | None
    ) -> None:
        if code.is_failure:
            log.warning("%s: connection refused: %s", self.device_id, code)
            self.lost = True
            return
        self.online, self.retry_s = True, RETRY_FIRST_S
        topics = [(self.ack_topic, 1)] + ([(self.config_topic, 1)] if self.config_topic else [])
        client.subscribe(topics)
        self.unsent = deque(self.queue)  # everything uncovered, oldest first

    def _on_disconnect(
        self, _c: Client, _u: object, _f: DisconnectFlags, code: ReasonCode, _p: Properties | None
    ) -> None:
        log.debug("%s: disconnected: %s", self.device_id, code)
        self.lost = True

    def _on_message(self, _c: Client, _u: object, message: MQTTMessage) -> None:
        if message.topic == self.ack_topic:
            self._on_ack(message.payload)
        elif message.topic == self.config_topic:
            self.configs.append(_decode_config(message.payload))

    def _on_ack(self, payload: bytes | bytearray) -> None:
        try:
            ack = json.loads(payload)
            boot, seq = int(ack["boot"]), int(ack["seq"])
        except (ValueError, KeyError, TypeError):
            return  # cleared or not an ack: covers nothing
        if boot != self.boot or seq <= self.covered:
            return  # another boot's ack covers none of this boot's readings
        self.covered = seq
        self.progress_at = time.monotonic()
        while self.queue and next(iter(self.queue)) <= seq:
            self.queue.popitem(last=False)


def _decode_config(payload: bytes | bytearray) -> Any:
    """A config message: None when cleared (empty), its JSON, or the bytes themselves."""
    if not payload:
        return None
    try:
        return json.loads(payload)
    except ValueError:
        return payload
