"""The writer job of MQTT ingest, without a broker: a group of messages in one job."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from bridge_kit import write_app

from gateway import Gateway, Settings
from gateway.mqtt import dead_letters, marks
from gateway.mqtt.ingest import Delivery, apply_messages

TOPIC = "sensors/dev-a/temperature"


def reading(seq: int | None, celsius: float = 1.0, **extra: object) -> Delivery:
    body: dict[str, object] = {"celsius": celsius, **extra}
    if seq is not None:
        body |= {"seq": seq, "boot": 2}
    return Delivery(TOPIC, json.dumps(body).encode(), 1, 1000.0)


async def test_one_job_applies_each_message_alone_and_in_order(tmp_path: Path) -> None:
    async with Gateway.open(write_app(tmp_path / "app"), tmp_path / "data", Settings()) as gw:
        await gw.store.write(lambda tx: marks.ensure_table(tx.conn))
        await gw.store.write(dead_letters.ensure_table)
        group = [
            reading(1),
            reading(1),  # a redelivery inside the same job
            reading(2, celsius=5000.0),  # the mutation raises: only it rolls back
            reading(3, **{"$x": 1}),  # refused after its counters were read
            reading(None),  # no counters: applied, at least once
            reading(4),
        ]
        job = functools.partial(apply_messages, gw.runtime, gw.app.mqtt, group)
        outcomes, _ = await gw.store.write(job)
        assert [o.kind for o in outcomes] == [
            "applied",
            "duplicate",
            "dead",
            "dead",
            "applied",
            "applied",
        ]
        assert outcomes[-1].ack == ("dev-a", 2, 4)  # dead letters are covered too
        rows = await gw.run_query("readings:everything")
        assert sorted(d.get("seq", 0.0) for d in rows) == [0.0, 1.0, 4.0]
        again, _ = await gw.store.write(job)  # the whole group redelivered
        assert [o.kind for o in again] == ["duplicate"] * 4 + ["applied", "duplicate"]
