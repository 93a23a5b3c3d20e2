"""MQTT durability: every reading covered by an ack is in the store exactly once, through
kill -9 of the gateway, kill -9 of its broker, restarts with devices publishing, and a
flood while the gateway is stopped (issue 9, section 7).

Simulated devices (``firmware_clients.simulator``) publish greenhouse readings with
(boot, seq) as fast as their acks free room, keep every reading until
``outpost/ack/{device}`` covers it, and resend after every reconnect. Meanwhile the test
SIGKILLs the ``outpost serve`` process (its managed broker dies with it) or only the
broker, at random points of the stream, and starts the gateway again. At the end every
reading of every device is covered; the store holds each (device, boot, seq) exactly
once, nothing went to the dead letters, and ``PRAGMA integrity_check`` is ok.

CI tier: 5 kills over 1,500 readings. Soak tier: 50 kills over 20,000 readings
(``OUTPOST_SOAK=1`` or ``-m soak``). ``OUTPOST_MQTT_KILL9_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from mqtt_gateway_kit import (
    GREENHOUSE,
    GatewayProcess,
    free_port,
    integrity,
    stored_readings,
    wait_for,
)

from firmware_clients.simulator.credentials import provision
from firmware_clients.simulator.fleet import Fleet

COVER_DEADLINE_S = 180.0


@dataclass(frozen=True)
class Tier:
    name: str
    devices: int
    readings_per_device: int
    kills: int


CI = Tier("ci", devices=3, readings_per_device=500, kills=5)
SOAK = Tier("soak", devices=10, readings_per_device=2_000, kills=50)


def run_tier(tier: Tier, tmp_path: Path) -> None:
    seed = int(os.environ.get("OUTPOST_MQTT_KILL9_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    data = tmp_path / "data"
    ids = [f"k9-{i}" for i in range(tier.devices)]
    creds = provision(ids, GREENHOUSE, data, tmp_path / "creds.json")
    gateway = GatewayProcess(GREENHOUSE, data, free_port(), tmp_path / "gateway.log")
    gateway.start()
    fleet = Fleet(
        [(c["device"], c["password"]) for c in creds],
        port=gateway.mqtt_port,
        rate_hz=math.inf,
        window=50,
        max_readings=tier.readings_per_device,
        seed=seed,
    )
    total = tier.devices * tier.readings_per_device
    kinds = {"gateway": 0, "broker": 0, "gateway, down a while": 0}
    started = time.monotonic()
    with fleet:
        for _ in range(tier.kills):
            covered = fleet.totals()["covered"]
            target = min(total, covered + rng.randint(10, max(11, total // (tier.kills * 2))))
            wait_for(
                lambda t=target: fleet.totals()["covered"] >= t,
                60,
                f"covered {target} ({seed=})",
                lambda: f"{fleet.totals()}\n{gateway.tail()}",
            )
            kind = rng.choice(list(kinds))
            kinds[kind] += 1
            if kind == "broker":
                old = gateway.kill9_broker()
                wait_for(lambda o=old: gateway.broker_pid() not in (None, o), 30, "a new broker")
                continue
            gateway.kill9()
            if kind == "gateway, down a while":  # every device notices, and keeps its readings
                wait_for(
                    lambda: not any(d.online for d in fleet.devices.values()),
                    30,
                    "every device offline",
                )
            gateway.start()
        wait_for(
            lambda: fleet.totals()["covered"] == total,
            COVER_DEADLINE_S,
            f"every reading covered ({fleet.totals()}, {seed=})\n{gateway.tail()}",
        )
        totals = fleet.totals()
    assert gateway.stop() == 0, gateway.tail()
    assert integrity(data) == "ok"
    seen, dead = asyncio.run(stored_readings(data))
    boots = fleet.boots
    doubled = {key: n for key, n in seen.items() if n > 1}
    assert not doubled, f"applied twice: {sorted(doubled)[:10]} ({seed=})"
    for device in ids:
        seqs = sorted(seq for (d, boot, seq) in seen if d == device and boot == boots[device])
        assert seqs == list(range(1, tier.readings_per_device + 1)), (device, seed)
    assert len(seen) == total and not dead
    elapsed = time.monotonic() - started
    print(
        f"\n[{tier.name}] seed {seed}: {total} readings from {tier.devices} devices, "
        f"{tier.kills} kills {kinds}, {gateway.starts} gateway starts, "
        f"resent {totals['resent']}, disconnects {totals['disconnects']}, "
        f"{elapsed:.1f} s; store: each reading once, integrity ok, 0 dead letters"
    )


def test_mqtt_kill9_ci_tier(tmp_path: Path) -> None:
    run_tier(CI, tmp_path)


@pytest.mark.soak
def test_mqtt_kill9_soak_tier(tmp_path: Path) -> None:
    run_tier(SOAK, tmp_path)
