"""An ``outpost serve`` edge process replicating to ``upstream_url`` (no MQTT broker)."""

from __future__ import annotations

import json
import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Any

OUTPOST = Path(sys.executable).parent / "outpost"
READY_DEADLINE_S = 30.0
EXIT_DEADLINE_S = 30.0


class EdgeProcess:
    """``outpost serve app --data-dir data`` with ``OUTPOST_UPSTREAM_URL`` set (or, with
    ``hub=True``, a hub: ``OUTPOST_HUB=true``), on ``port`` (0: any free one)."""

    def __init__(
        self,
        app: Path,
        data: Path,
        upstream_url: str,
        log: Path,
        *,
        port: int = 0,
        hub: bool = False,
    ) -> None:
        self.app, self.data, self.upstream_url, self.log = app, data, upstream_url, log
        self.port, self.hub = port, hub
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
        env |= {"OUTPOST_MQTT_BROKER": "off", "OUTPOST_UPSTREAM_URL": self.upstream_url}
        if self.hub:
            env["OUTPOST_HUB"] = "true"
        command = [str(OUTPOST), "serve", str(self.app), "--data-dir", str(self.data)]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [*command, "--port", str(self.port)],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
            )
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(READY_DEADLINE_S):
                raise AssertionError(f"edge not ready in {READY_DEADLINE_S} s\n{self.tail()}")
        line = self.proc.stdout.readline()
        assert line.startswith("Outpost listening on "), f"no ready line: {line!r}\n{self.tail()}"
        self.url = line.split(" on ", 1)[1].strip()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(EXIT_DEADLINE_S)
        self._close()

    def stop(self) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(EXIT_DEADLINE_S)
        self._close()
        return code

    def _close(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def call(self, kind: str, path: str, args: dict[str, Any]) -> Any:
        """One call through the HTTP API; its value (an error fails the test)."""
        body = json.dumps({"path": path, "args": args, "format": "json"}).encode()
        request = urllib.request.Request(
            f"{self.url}/api/{kind}", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        return answer["value"]

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def store_rows(data: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a read-only query on a stopped edge's store."""
    with closing(sqlite3.connect(f"file:{data / 'outpost.sqlite3'}?mode=ro", uri=True)) as conn:
        return conn.execute(sql).fetchall()


def add_gateway(app: Path, hub_data: Path, name: str) -> str:
    """``outpost gateway add NAME --json`` on the hub's data directory; the key."""
    done = subprocess.run(
        [str(OUTPOST), "gateway", "add", name, "--json", str(app), "--data-dir", str(hub_data)],
        capture_output=True,
        text=True,
        check=True,
    )
    key: str = json.loads(done.stdout)["key"]
    return key
