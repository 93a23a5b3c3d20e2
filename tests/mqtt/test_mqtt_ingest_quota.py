"""A full outbox under ``block``: an MQTT message whose mutation writes an ``up`` table is
dead-lettered with a reason naming the setting, and the stream goes on."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from bridge_kit import write_app

from gateway import Gateway, Settings
from gateway.mqtt import dead_letters, marks
from gateway.mqtt.ingest import Delivery, apply_messages

SCHEMA = """
from gateway import define_schema, define_table, v

schema = define_schema({
    "readings": define_table({
        "device": v.string(), "celsius": v.float64(), "topic": v.string(),
        "qos": v.float64(), "seq": v.optional(v.float64()), "boot": v.optional(v.float64()),
        "subject": v.string(),
    }).replicate("up"),
})
"""


def reading(seq: int) -> Delivery:
    body = {"celsius": 1.0, "seq": seq, "boot": 2}
    return Delivery("sensors/dev-a/temperature", json.dumps(body).encode(), 1, 1000.0)


async def test_a_refused_mutation_is_dead_lettered_with_the_quota_reason(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", schema=SCHEMA)
    settings = Settings(
        outbox_max_bytes=1, outbox_overflow="block", upstream_url="http://127.0.0.1:9"
    )  # the limit applies only with an upstream; Gateway.open starts no uplink
    async with Gateway.open(app, tmp_path / "data", settings) as gw:
        await gw.store.write(lambda tx: marks.ensure_table(tx.conn))
        await gw.store.write(dead_letters.ensure_table)
        first, _ = await gw.store.write(
            functools.partial(apply_messages, gw.runtime, gw.app.mqtt, [reading(1)])
        )
        assert [o.kind for o in first] == ["applied"]  # the outbox was empty: it fits
        then, _ = await gw.store.write(
            functools.partial(apply_messages, gw.runtime, gw.app.mqtt, [reading(2), reading(3)])
        )
        assert [o.kind for o in then] == ["dead", "dead"]
        assert then[-1].ack == ("dev-a", 2, 3)  # acknowledged: the device moves on
        assert all("outbox_max_bytes" in (o.reason or "") for o in then)
        assert len(await gw.run_query("readings:everything")) == 1
