"""One MQTT message into the store: the writer job that applies it exactly once.

``apply_message`` runs on the writer thread inside one writer job, so everything it
does commits together or not at all: the dedupe check and the new mark
(``marks``), the mutation's writes (in a savepoint: if the mutation fails only they roll
back), or the dead letter (``dead_letters``) that takes the message's place. The bridge
acknowledges the message to the broker only once that job's batch is durable.

No aiohttp, no paho here: a message is plain data (``Delivery``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from gateway.errors import PayloadError
from gateway.mqtt import dead_letters, marks
from gateway.mqtt.codecs import MAX_PAYLOAD_BYTES, decode_payload
from gateway.mqtt.routes import MqttRouter
from gateway.runtime.context import MqttMessage
from gateway.runtime.runtime import Runtime
from gateway.store import Transaction

MAX_REASON_CHARS: Final = 2000
ISSUER: Final = "mqtt"  # ``ctx.auth`` identity of a device: issuer "mqtt", subject its ID


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message as the bridge received it."""

    topic: str
    payload: bytes
    qos: int
    received_ms: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a message; ``ack`` is its (device, boot, acked) after the job."""

    kind: Literal["applied", "duplicate", "dead", "answered"]  # answered: a device RPC
    ack: tuple[str, int, int] | None = None
    reason: str = ""


def device_identity(device: str) -> dict[str, str]:
    """``ctx.auth.get_user_identity()`` of a mutation run for ``device``."""
    return {"subject": device, "issuer": ISSUER, "tokenIdentifier": f"{ISSUER}|{device}"}


def apply_messages(
    runtime: Runtime,
    router: MqttRouter,
    deliveries: list[Delivery],
    tx: Transaction,
    *,
    dead_letters_full: bool = False,
) -> list[Outcome]:
    """Apply consecutive messages in one writer job (one transaction, one ts), in order.

    Each message is still its own unit: its mutation runs in a savepoint, a failure
    dead-letters it alone, and a duplicate inside the group is recognised (the marks are
    read inside the same transaction). Sharing the job saves the per-job costs (a future,
    a task, a hop between threads) that dominate small readings."""
    return [
        apply_message(runtime, router, delivery, tx, dead_letters_full=dead_letters_full)
        for delivery in deliveries
    ]


def apply_message(
    runtime: Runtime,
    router: MqttRouter,
    delivery: Delivery,
    tx: Transaction,
    *,
    dead_letters_full: bool = False,
) -> Outcome:
    """Apply ``delivery`` in ``tx``: its mutation, or a dead letter; dedupe by counters."""
    matched = router.match(delivery.topic)
    if matched is None:
        return _dead(tx, delivery, None, "no ingest route matches this topic", dead_letters_full)
    route, bound = matched
    device = bound["device"]
    if len(delivery.payload) > MAX_PAYLOAD_BYTES:
        reason = f"payload is {len(delivery.payload)} bytes, over the {MAX_PAYLOAD_BYTES} cap"
        return _dead(tx, delivery, device, reason, dead_letters_full)
    problem = ""  # a payload refused after its counters were read
    args: dict[str, object] = {}
    seq: int | None
    boot: int | None
    try:
        decoded = decode_payload(route.payload, delivery.payload)
    except PayloadError as exc:
        if exc.seq is None:
            return _dead(tx, delivery, device, str(exc), dead_letters_full)
        seq, boot, problem = exc.seq, exc.boot, str(exc)
    else:
        seq, boot = decoded.seq, decoded.boot
        try:
            args = route.args_for(bound, decoded.args)
        except PayloadError as exc:
            problem = str(exc)
    epoch = boot if boot is not None else 0
    if seq is None:  # at-least-once: nothing to dedupe by
        if problem:
            return _dead(tx, delivery, device, problem, dead_letters_full)
        return _run(runtime, route.function, args, tx, delivery, device, None, dead_letters_full)
    if seq == 0:
        reason = "seq counts from 1 in each boot (0 would never be covered by an ack)"
        return _dead(tx, delivery, device, reason, dead_letters_full, seq=seq, boot=epoch)
    conn = tx.conn
    mark = marks.load(conn, device, epoch)
    if mark.seen(seq):
        return Outcome("duplicate", (device, epoch, mark.acked))
    if problem:  # the dead letter takes its place, and the ack covers it
        outcome = _dead(tx, delivery, device, problem, dead_letters_full, seq=seq, boot=epoch)
    else:
        counters = (seq, epoch)
        outcome = _run(
            runtime, route.function, args, tx, delivery, device, counters, dead_letters_full
        )
    mark.add(seq)
    marks.save(conn, mark, delivery.received_ms)
    return Outcome(outcome.kind, (device, epoch, mark.acked), outcome.reason)


def _run(
    runtime: Runtime,
    path: str,
    args: dict[str, object],
    tx: Transaction,
    delivery: Delivery,
    device: str,
    counters: tuple[int, int] | None,
    dead_letters_full: bool,
) -> Outcome:
    seq, boot = counters if counters is not None else (None, None)
    info = MqttMessage(delivery.topic, device, delivery.qos, delivery.received_ms, seq, boot)
    error = runtime.execute_ingest(path, args, tx, identity=device_identity(device), mqtt=info)
    if error is None:
        return Outcome("applied")
    return _dead(tx, delivery, device, error, dead_letters_full, seq=seq, boot=boot)


def _dead(
    tx: Transaction,
    delivery: Delivery,
    device: str | None,
    reason: str,
    full: bool,
    *,
    seq: int | None = None,
    boot: int | None = None,
) -> Outcome:
    reason = reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS] + "..."
    dead_letters.insert(
        tx,
        topic=delivery.topic,
        device=device,
        payload=delivery.payload,
        reason=reason,
        qos=delivery.qos,
        now_ms=delivery.received_ms,
        seq=seq,
        boot=boot,
        over_limit=full,
    )
    return Outcome("dead", reason=reason)
