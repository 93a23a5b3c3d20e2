"""The bridge: the gateway's own MQTT client, between the broker and the store.

Ingest (issue 9, section 3; DESIGN decision 7):

- One paho client, MQTT 5, a persistent session (``clean_start`` off, a session that
  never expires), subscribed at QoS 1 to every ingest route. QoS 2 publishes reach it as
  QoS 1 (the subscription's QoS caps them): exactly once comes from the devices'
  counters, not from QoS 2, whose handshake the broker completes with the device before
  the gateway has stored anything.
- ``manual_ack``: a message is acknowledged to the broker only once the writer batch
  holding it is durable, in the order received (an MQTT 5 receiver's duty). Until then
  the broker keeps it and redelivers it after any disconnect or restart.
- The client's Receive Maximum bounds the QoS 1 messages the broker sends unacknowledged;
  ``RECEIVE_MAXIMUM`` lets group commit form batches of hundreds. QoS 0 messages are not
  bound by it, so the bridge also holds at most ``MAX_HELD`` messages: past that its
  network thread stops reading (TCP backpressure) instead of buffering without bound.
- Retained messages are not ingested (subscriptions ask for none, and one that arrives
  anyway is acknowledged and skipped): a retained reading would be applied again at every
  new subscription.
- After each batch, each device whose dedupe mark moved gets a retained
  ``outpost/ack/{device}`` = ``{"boot": b, "seq": n}``: every message of that boot with
  seq <= n is durable (applied or dead-lettered).

paho runs its network loop on a thread of its own (``loop_start``); messages cross to the
event loop with ``call_soon_threadsafe``; ``close`` stops that thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage, MQTTv5
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.errors import DiskFullError, OutpostError
from gateway.mqtt import dead_letters, marks, rpc, topics
from gateway.mqtt.activity import DeviceActivity
from gateway.mqtt.endpoint import BrokerEndpoint
from gateway.mqtt.ingest import Delivery, Outcome, apply_messages, device_identity
from gateway.mqtt.publisher import Publisher
from gateway.mqtt.routes import MqttRouter

if TYPE_CHECKING:
    from gateway.gateway import Gateway
    from gateway.runtime.loader import App

log = logging.getLogger("gateway.mqtt")

RECEIVE_MAXIMUM: Final = 512
GROUP_MAX: Final = 64  # consecutive messages applied by one writer job (its own savepoint each)
MAX_HELD: Final = 1024  # messages received and not yet acknowledged (QoS 0 included)
SESSION_NEVER_EXPIRES: Final = 0xFFFFFFFF
KEEPALIVE_S: Final = 30
CONNECT_DEADLINE_S: Final = 10.0
DRAIN_DEADLINE_S: Final = 3.0
RETRY_MAX_S: Final = 5.0
ACK_TOPIC: Final = "outpost/ack/{}"


class BridgeError(OutpostError):
    """The bridge could not connect to its broker (wrong credentials, refused)."""


@dataclass
class BridgeStats:
    """Counters for tests, benchmarks and metrics."""

    received: int = 0
    applied: int = 0
    duplicates: int = 0
    dead: int = 0
    retained_skipped: int = 0
    answered: int = 0
    peak_held: int = 0  # most messages held at once (bounded by ``MAX_HELD``)
    acked: int = 0
    published: int = 0  # PUBLISHes handed to paho: acks, publish rules, RPC answers
    connects: int = 0
    retries: int = 0


@dataclass(eq=False)
class _Work:
    """One writer job for consecutive messages (or one device RPC) and its task."""

    deliveries: list[Delivery]
    retryable: bool = True  # a write is retried until it holds; a call is answered once
    task: asyncio.Task[list[Outcome]] | None = None


@dataclass
class _Held:
    """A received message waiting for its write and its turn to be acknowledged."""

    delivery: Delivery
    mid: int
    generation: int  # of the connection it came on: acks go only to that connection
    work: _Work | None  # None: nothing to do (retained, a call with nowhere to answer)
    index: int = 0  # its outcome's place in the work's outcomes


@dataclass
class _Connection:
    generation: int = 0
    connected: bool = False
    error: str | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class Bridge:
    """The gateway's MQTT client: ingest routes in, acks out."""

    def __init__(
        self,
        gateway: Gateway,
        endpoint: BrokerEndpoint,
        *,
        on_subscribed: Callable[[], None] | None = None,
    ) -> None:
        """``on_subscribed`` runs on the loop after each SUBACK of the bridge's own
        subscriptions (the managed broker saves its database then: ``ManagedBroker.save``)."""
        self._gateway = gateway
        self._endpoint = endpoint
        self._on_subscribed = on_subscribed
        self._loop = asyncio.get_running_loop()
        self._router: MqttRouter = gateway.app.mqtt or MqttRouter()
        self._filters: set[str] = set()  # subscribed now; under ``_subscribing``
        self._subscribing = threading.Lock()  # paho's thread (connect) and the loop (reload)
        self._held: deque[_Held] = deque()
        # paho's thread -> the loop: appended there, drained here in bursts, so that a
        # burst of messages costs one wake-up of the loop, not one each.
        self._inbox: deque[tuple[MQTTMessage, int]] = deque()
        self._inbox_scheduled = False
        self._slots = threading.BoundedSemaphore(MAX_HELD)
        self._wake = asyncio.Event()
        self._acks: dict[str, tuple[int, int]] = {}  # device -> (boot, acked) to publish
        self._acks_sent: dict[str, tuple[int, int]] = {}  # device -> the last one published
        self._dead_count = 0
        self._conn = _Connection()
        self._stopping = False
        self._acker: asyncio.Task[None] | None = None
        self._unlisten: Any = None
        self.stats = BridgeStats()
        self.activity = DeviceActivity()  # per device: last message, rate (the dashboard)
        self.client = self._make_client(gateway.store.gateway_id)
        self.publisher = Publisher(gateway.sync, self._publish_retained, gateway.data_dir)

    # --- life ----------------------------------------------------------------------------

    async def start(self, *, connect_deadline_s: float = CONNECT_DEADLINE_S) -> None:
        """Connect and subscribe; raises ``BridgeError`` if the broker refuses us, and
        goes on trying in the background if it does not answer within the deadline."""
        store = self._gateway.store
        await store.write(lambda tx: marks.ensure_table(tx.conn))
        await store.write(dead_letters.ensure_table)
        self._dead_count, _ = await store.read(dead_letters.count)
        self._acker = asyncio.create_task(self._ack_loop(), name="outpost-mqtt-acker")
        endpoint = self._endpoint
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_NEVER_EXPIRES
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self.client.connect_async(
            endpoint.host, endpoint.port, KEEPALIVE_S, clean_start=False, properties=props
        )
        self.client.loop_start()
        try:
            await self._wait_connected(connect_deadline_s)
        except BaseException:
            await self.close()
            raise
        try:
            await self.publisher.start(self._router)
        except BaseException:
            await self.close()
            raise
        self._unlisten = self._gateway.on_app_reloaded(self._app_reloaded)
        if self._conn.connected:
            log.info("MQTT bridge connected to %s", endpoint.describe())

    async def _wait_connected(self, deadline_s: float) -> None:
        """Wait for the CONNACK. A refusal (wrong credentials) stops the start; a broker
        that does not answer yet does not: the gateway serves, and paho keeps trying
        (an external broker may be down, and the broker queues nothing until then)."""
        deadline = self._loop.time() + deadline_s
        conn = self._conn
        while not conn.connected:
            if conn.error is not None:
                raise BridgeError(f"the broker at {self._endpoint.describe()} {conn.error}")
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                log.warning(
                    "the MQTT broker at %s does not answer within %.0f s; the bridge "
                    "keeps trying (is it running and reachable?)",
                    self._endpoint.describe(),
                    deadline_s,
                )
                return
            conn.changed.clear()
            with contextlib.suppress(TimeoutError):  # not wait_for: see Uplink._next_cut
                async with asyncio.timeout(remaining):
                    await conn.changed.wait()

    async def close(self) -> None:
        """Acknowledge what is durable (within a deadline), disconnect, stop the thread."""
        if self._stopping:
            return
        self._stopping = True
        if self._unlisten is not None:
            self._unlisten()
        await self.publisher.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained(), DRAIN_DEADLINE_S)
        if self._acker is not None:
            self._acker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._acker
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)
        self._held.clear()

    async def _drained(self) -> None:
        while self._held:
            self._wake.set()
            await asyncio.sleep(0.01)

    @property
    def connected(self) -> bool:
        return self._conn.connected

    @property
    def pending(self) -> int:
        """Messages received and not yet acknowledged (or settled, for QoS 0)."""
        return len(self._held)

    # --- paho's thread -------------------------------------------------------------------

    def _make_client(self, gateway_id: str) -> Client:
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"outpost-bridge-{gateway_id}",
            protocol=MQTTv5,
            manual_ack=True,
        )
        endpoint = self._endpoint
        if endpoint.username is not None:
            client.username_pw_set(endpoint.username, endpoint.password)
        if endpoint.tls:
            client.tls_set()
        client.reconnect_delay_set(1, 10)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _on_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._loop.call_soon_threadsafe(self._set_connection, False, _refusal(reason))
            return
        self._conn.generation += 1  # read on this thread only (``_on_message``)
        self._subscribe(client, self._router)
        self._loop.call_soon_threadsafe(self._set_connection, True, None)

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        self._loop.call_soon_threadsafe(self._set_connection, False, None)

    def _set_connection(self, connected: bool, error: str | None) -> None:
        conn = self._conn
        if connected and not conn.connected:
            self.stats.connects += 1
            if self.stats.connects > 1:
                log.info("MQTT bridge reconnected to %s", self._endpoint.describe())
                self.publisher.republish()
        elif not connected and conn.connected and not self._stopping:
            log.warning("MQTT bridge lost %s; reconnecting", self._endpoint.describe())
        conn.connected = connected
        if connected or error is not None:  # the disconnect after a refusal keeps its reason
            conn.error = error
        conn.changed.set()

    def _subscribe(self, client: Client, router: MqttRouter) -> None:
        with self._subscribing:
            self._resubscribe(client, router)

    def _resubscribe(self, client: Client, router: MqttRouter) -> None:
        wanted = {_filter(route.pattern) for route in router.ingest_routes} | {rpc.CALL_FILTER}
        # retainHandling 2: no retained messages at subscribe time (never ingested).
        options = SubscribeOptions(qos=1, noLocal=True, retainHandling=2)
        if wanted:
            client.subscribe([(f, options) for f in sorted(wanted)])
        gone = self._filters - wanted
        if gone:
            client.unsubscribe(sorted(gone))
        self._filters = wanted

    def _on_subscribe(
        self, client: Client, userdata: Any, mid: int, codes: Any, props: Any
    ) -> None:
        if self._on_subscribed is not None:
            self._loop.call_soon_threadsafe(self._on_subscribed)

    def _on_message(self, client: Client, userdata: Any, msg: MQTTMessage) -> None:
        generation = self._conn.generation
        while not self._slots.acquire(timeout=0.2):  # full: stop reading the socket
            if self._stopping:
                return  # not acknowledged: the broker redelivers it next time
        self._inbox.append((msg, generation))
        if not self._inbox_scheduled:
            self._inbox_scheduled = True
            self._loop.call_soon_threadsafe(self._drain_inbox)

    # --- the event loop ------------------------------------------------------------------

    def _drain_inbox(self) -> None:
        """Hold every message received so far; consecutive ingest messages share one
        writer job (at most ``GROUP_MAX``), each still in its own savepoint."""
        self._inbox_scheduled = False  # first: a message appended from now on wakes us again
        groups: list[_Work] = []
        group: _Work | None = None
        while self._inbox:
            msg, generation = self._inbox.popleft()
            self.stats.received += 1
            delivery = Delivery(msg.topic, bytes(msg.payload), msg.qos, time.time() * 1000)
            work: _Work | None = None
            index = 0
            if msg.retain:
                self.stats.retained_skipped += 1
            elif rpc.is_call(msg.topic):
                work, group = self._start_call(msg, delivery), None
            else:
                self._note(delivery)
                if group is None or len(group.deliveries) >= GROUP_MAX:
                    group = _Work([])
                    groups.append(group)
                index = len(group.deliveries)
                group.deliveries.append(delivery)
                work = group
            self._held.append(_Held(delivery, msg.mid, generation, work, index))
        for work in groups:  # created in order: the writer runs them in receipt order
            work.task = self._loop.create_task(self._write(work.deliveries))
        self.stats.peak_held = max(self.stats.peak_held, len(self._held))
        self._wake.set()

    def _note(self, delivery: Delivery) -> None:
        """Count the message for its device (a topic no route matches has none)."""
        matched = self._router.match(delivery.topic)
        device = None if matched is None else matched[1].get("device")
        if device is not None:
            topic, size = delivery.topic, len(delivery.payload)
            self.activity.record(device, topic, size, delivery.received_ms)

    def _start_call(self, msg: MQTTMessage, delivery: Delivery) -> _Work | None:
        props = msg.properties
        call = rpc.parse_call(
            delivery.topic,
            delivery.payload,
            getattr(props, "ResponseTopic", None),
            getattr(props, "CorrelationData", None),
        )
        if call is None:
            log.warning(
                "MQTT call on %s not answered: its response topic must be in the device's "
                "own outpost/reply/{device}/ tree",
                delivery.topic[:200],
            )
            return None
        self.activity.record(
            call.device, delivery.topic, len(delivery.payload), delivery.received_ms
        )
        work = _Work([delivery], retryable=False)
        work.task = self._loop.create_task(self._answer(call))
        return work

    async def _answer(self, call: rpc.Call) -> list[Outcome]:
        payload = await rpc.run_call(self._gateway.runtime, call, device_identity(call.device))
        props = None
        if call.correlation is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.CorrelationData = call.correlation
        self.client.publish(call.response_topic, payload, qos=1, properties=props)
        self.stats.published += 1
        return [Outcome("answered")]

    async def _write(self, deliveries: list[Delivery]) -> list[Outcome]:
        full = self._dead_count >= dead_letters.MAX_ROWS
        work = functools.partial(
            apply_messages,
            self._gateway.runtime,
            self._router,
            deliveries,
            dead_letters_full=full,
        )
        outcomes, _ = await self._gateway.store.write(work)
        return outcomes

    async def _ack_loop(self) -> None:
        """Acknowledge held messages in the order received, each once it is durable."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._held:
                head = self._held[0]
                if head.work is not None:
                    self._count(await self._settle(head))
                self._held.popleft()
                if head.delivery.qos > 0 and head.generation == self._conn.generation:
                    self.client.ack(head.mid, 1)
                    self.stats.acked += 1
                self._slots.release()
                if not self._held or not _settled(self._held[0]):
                    self._publish_acks()
            self._publish_acks()

    async def _settle(self, head: _Held) -> Outcome:
        """The head's outcome; a failed write (disk full, I/O) is retried until it holds:
        the message stays unacknowledged (the broker keeps it), never dead-lettered.

        Only a group's first message can meet the failure: the others are settled after
        it, once the group's retried job succeeded."""
        work = head.work
        assert work is not None and work.task is not None
        delay = 0.1
        full_before = False
        while True:
            try:
                return (await work.task)[head.index]
            except Exception as exc:  # noqa: BLE001 - the store could not commit: retry
                if not work.retryable:
                    log.error("MQTT call on %s failed: %s", head.delivery.topic[:200], exc)
                    return Outcome("answered")
                self.stats.retries += 1
                full = isinstance(exc, DiskFullError)
                # A full disk is said once (the store logs it too), not at every retry.
                log.log(
                    logging.DEBUG if full and full_before else logging.ERROR,
                    "%d MQTT messages from %s on not stored (%s); retrying",
                    len(work.deliveries),
                    head.delivery.topic[:200],
                    exc,
                )
                full_before = full
                if full:  # unacknowledged meanwhile; retried as soon as space returns
                    await self._gateway.store.disk.wait_writable(RETRY_MAX_S)
                else:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
                work.task = self._loop.create_task(self._write(work.deliveries))

    def _count(self, outcome: Outcome) -> None:
        stats = self.stats
        if outcome.kind == "applied":
            stats.applied += 1
        elif outcome.kind == "duplicate":
            stats.duplicates += 1
        elif outcome.kind == "answered":
            stats.answered += 1
        else:
            stats.dead += 1
            self._dead_count += 1
        if outcome.ack is not None:
            device, boot, acked = outcome.ack
            self._acks[device] = (boot, acked)

    def _publish_acks(self) -> None:
        acks, self._acks = self._acks, {}
        for device, (boot, seq) in acks.items():
            if self._acks_sent.get(device) == (boot, seq):
                continue  # a duplicate or a reading above a gap: the ack did not move
            self._acks_sent[device] = (boot, seq)
            payload = json.dumps({"boot": boot, "seq": seq}, separators=(",", ":"))
            self.client.publish(ACK_TOPIC.format(device), payload, qos=1, retain=True)
            self.stats.published += 1

    def _publish_retained(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1, retain=True)
        self.stats.published += 1

    async def _app_reloaded(self, app: App) -> None:
        router = app.mqtt if app.mqtt is not None else MqttRouter()
        self._router = router
        if self._conn.connected:
            self._subscribe(self.client, router)
        await self.publisher.replace(router)


def _settled(held: _Held) -> bool:
    """True if ``held`` needs no more waiting (its work is done, or it has none)."""
    return held.work is None or (held.work.task is not None and held.work.task.done())


def _filter(pattern: str) -> str:
    """A route pattern as a subscription filter: every placeholder becomes ``+``."""
    return "/".join(
        "+" if isinstance(seg, topics.Placeholder) else seg
        for seg in topics.parse_segments(pattern)
    )


def _refusal(reason: ReasonCode) -> str:
    name = str(reason)
    if name in ("Bad user name or password", "Not authorized"):
        return f"refused the gateway's credentials ({name})"
    return f"refused the connection ({name})"
