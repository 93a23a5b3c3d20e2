"""``outpost serve`` processes with the managed broker, and the store checks after them.

Used by the MQTT durability tests: a gateway process on the greenhouse app with its
managed Mosquitto on a fixed (ephemeral) MQTT port, so that simulated devices reconnect
to the same address after every restart; kill -9 of the gateway or of its broker; then
the store opened directly to count what is in it.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from debian import ensure_programs
from serve_process_kit import ServeProcess

from gateway import Gateway, Settings
from gateway.mqtt.broker_pid import broker_directory, is_our_broker, read_pid

REPO = Path(__file__).resolve().parents[2]
GREENHOUSE = REPO / "examples" / "greenhouse"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(
    check: Callable[[], bool],
    deadline_s: float,
    what: str,
    details: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``check`` until true; fail naming ``what`` (and ``details()``) after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_s:.0f} s: {what}\n{details()}")
        time.sleep(0.01)


class GatewayProcess(ServeProcess):
    """``outpost serve`` of ``app`` on ``data``, its managed broker on ``mqtt_port``."""

    def __init__(self, app: Path, data: Path, mqtt_port: int, log: Path) -> None:
        ensure_programs(["mosquitto"], ["mosquitto"], "the MQTT durability tests")
        super().__init__(app, data, log)
        self.mqtt_port = mqtt_port

    def settings(self) -> dict[str, str]:
        return {"OUTPOST_MQTT_BROKER": "managed", "OUTPOST_MQTT_PORT": str(self.mqtt_port)}

    def broker_pid(self) -> int | None:
        directory = broker_directory(self.data)
        pid = read_pid(directory)
        return pid if pid is not None and is_our_broker(pid, directory) else None

    def kill9_broker(self) -> int:
        """SIGKILL the managed broker; its PID (the supervisor starts a new one)."""
        pid = self.broker_pid()
        assert pid is not None, f"no broker running\n{self.tail()}"
        os.kill(pid, signal.SIGKILL)
        return pid


def integrity(data: Path) -> str:
    with closing(sqlite3.connect(data / "outpost.sqlite3")) as conn:
        row = conn.execute("PRAGMA integrity_check").fetchone()
        return str(row[0])


async def stored_readings(data: Path) -> tuple[Counter[tuple[str, int, int]], list[Any]]:
    """(device, boot, seq) -> how many readings hold it; and the dead letters."""
    seen: Counter[tuple[str, int, int]] = Counter()
    async with Gateway.open(GREENHOUSE, data, Settings(mqtt_broker="off")) as gw:
        for doc in await _every(gw, "readings"):
            seen[(doc["device"], int(doc["boot"]), int(doc["seq"]))] += 1
        dead = await _every(gw, "_dead_letters")
    return seen, dead


async def _every(gw: Gateway, table: str) -> list[Any]:
    docs: list[Any] = []
    cursor = None
    while True:
        page = await gw.run_query(
            "_system/cli/tableData",
            {"table": table, "paginationOpts": {"numItems": 1000, "cursor": cursor}},
        )
        docs += page["page"]
        if page["isDone"]:
            return docs
        cursor = page["continueCursor"]
