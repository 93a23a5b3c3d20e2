"""``outpost serve`` processes with the managed broker, and the store checks after them.

Used by the MQTT durability tests: a gateway process on the greenhouse app with its
managed Mosquitto on a fixed (ephemeral) MQTT port, so that simulated devices reconnect
to the same address after every restart; kill -9 of the gateway or of its broker; then
the store opened directly to count what is in it.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from debian import ensure_programs

from gateway import Gateway, Settings
from gateway.mqtt.broker_pid import broker_directory, is_our_broker, read_pid

REPO = Path(__file__).resolve().parents[2]
GREENHOUSE = REPO / "examples" / "greenhouse"
OUTPOST = Path(sys.executable).parent / "outpost"
READY_DEADLINE_S = 30.0
EXIT_DEADLINE_S = 30.0


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


class GatewayProcess:
    """``outpost serve`` of ``app`` on ``data``, its broker on ``mqtt_port``."""

    def __init__(self, app: Path, data: Path, mqtt_port: int, log: Path) -> None:
        ensure_programs(["mosquitto"], ["mosquitto"], "the MQTT durability tests")
        self.app, self.data, self.mqtt_port, self.log = app, data, mqtt_port, log
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0
        self.url = ""  # the HTTP API of the running process

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
        env |= {"OUTPOST_MQTT_BROKER": "managed", "OUTPOST_MQTT_PORT": str(self.mqtt_port)}
        return env

    def start(self) -> None:
        command = [
            str(OUTPOST),
            "serve",
            str(self.app),
            "--data-dir",
            str(self.data),
            "--port",
            "0",
        ]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, text=True, env=self.env()
            )
        self.starts += 1
        line = self._ready_line()
        assert line.startswith("Outpost listening on "), f"no ready line: {line!r}\n{self.tail()}"
        self.url = line.split(" on ", 1)[1].strip()

    def _ready_line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(READY_DEADLINE_S):
                raise AssertionError(f"gateway not ready in {READY_DEADLINE_S} s\n{self.tail()}")
        return self.proc.stdout.readline()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(EXIT_DEADLINE_S)
        self._close()

    def stop(self) -> int:
        """SIGTERM and wait; the exit status."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(EXIT_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the gateway did not stop on SIGTERM\n{self.tail()}") from None
        self._close()
        return code

    def _close(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

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

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def call(url: str, kind: str, path: str, args: dict[str, Any]) -> Any:
    """One call through the HTTP API; its value (an error fails the test)."""
    body = json.dumps({"path": path, "args": args, "format": "json"}).encode()
    request = urllib.request.Request(
        f"{url}/api/{kind}", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    assert answer["status"] == "success", answer
    return answer["value"]


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
