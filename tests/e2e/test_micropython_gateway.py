"""The MicroPython client's own code (under CPython, umqtt shim) against a real
``outpost serve`` and its managed broker: readings land once through a kill -9, and a
config set over the HTTP API reaches the board."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mqtt_gateway_kit import GREENHOUSE, GatewayProcess, free_port, stored_readings

from firmware_clients import use_micropython_code
from firmware_clients.simulator.credentials import provision

use_micropython_code()
from outpost_client import Device  # noqa: E402  (a board module, importable only now)
from outpost_loop import Runner  # noqa: E402

DEVICE = "mp-1"
READINGS = 40
DEADLINE_S = 30.0


def run_until(runner: Runner, condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out: {what}"
        runner.step()
        time.sleep(0.002)


async def test_the_board_client_delivers_once_through_a_kill9_and_gets_its_config(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    (credentials,) = provision([DEVICE], GREENHOUSE, data, tmp_path / "creds.json")
    gateway = GatewayProcess(GREENHOUSE, data, free_port(), tmp_path / "gateway.log")
    gateway.start()
    made = 0
    configs: list[Any] = []

    def sensor() -> dict[str, float] | None:
        nonlocal made
        if made >= READINGS:
            return None
        made += 1
        return {"celsius": 20.0 + made / 10}

    flash = tmp_path / "flash"
    flash.mkdir()
    device = Device(
        {**credentials, "port": gateway.mqtt_port},
        str(flash),
        on_config=configs.append,
        log=lambda _line: None,
    )
    runner = Runner(device, sensor, interval_s=0.001, retry_first_ms=20)
    try:
        run_until(runner, lambda: device.covered >= READINGS // 2, "half the readings covered")
        gateway.kill9()
        gateway.start()
        run_until(
            runner, lambda: device.covered == READINGS, f"all readings covered\n{gateway.tail()}"
        )
        assert len(device.queue) == 0
        gateway.call(
            "mutation", "devices:register", {"name": DEVICE, "zone": "z", "max_celsius": 31.0}
        )
        run_until(
            runner, lambda: any(c and c.get("max_celsius") == 31.0 for c in configs), "the config"
        )
    finally:
        device.close()
        assert gateway.stop() == 0, gateway.tail()
    seen, dead = await stored_readings(data)
    assert sorted(seen) == [(DEVICE, device.boot, seq) for seq in range(1, READINGS + 1)]
    assert set(seen.values()) == {1} and not dead
