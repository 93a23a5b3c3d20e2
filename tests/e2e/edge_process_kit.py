"""An ``outpost serve`` edge process replicating to ``upstream_url`` (no MQTT broker)."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path
from typing import Any

from serve_process_kit import OUTPOST, ServeProcess


class EdgeProcess(ServeProcess):
    """``outpost serve app --data-dir data`` with ``OUTPOST_UPSTREAM_URL`` set (or, with
    ``hub=True``, a hub: ``OUTPOST_HUB=true``), on ``port`` (0: any free one); ``extra``
    adds settings (``{"UPSTREAM_REQUEST_TIMEOUT_S": "3"}``), changeable between starts."""

    def __init__(
        self,
        app: Path,
        data: Path,
        upstream_url: str,
        log: Path,
        *,
        port: int = 0,
        hub: bool = False,
        extra: dict[str, str] | None = None,
    ) -> None:
        super().__init__(app, data, log, port=port)
        self.upstream_url, self.hub = upstream_url, hub
        self.extra = dict(extra or {})

    def settings(self) -> dict[str, str]:
        env = {"OUTPOST_MQTT_BROKER": "off", "OUTPOST_UPSTREAM_URL": self.upstream_url}
        if self.hub:
            env["OUTPOST_HUB"] = "true"
        return env | {f"OUTPOST_{name}": value for name, value in self.extra.items()}


def store_rows(data: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a read-only query on a stopped edge's store."""
    with closing(sqlite3.connect(f"file:{data / 'outpost.sqlite3'}?mode=ro", uri=True)) as conn:
        return conn.execute(sql).fetchall()


def provenance_rows(hub_data: Path) -> list[dict[str, Any]]:
    """A stopped hub's provenance rows (``gateway.replication.hub_tables``), keyed as the
    admin query ``_system/replication:provenance`` answers them."""
    rows = store_rows(
        hub_data,
        "SELECT o.doc_id, o.tbl, p.gateway, p.epoch, o.seq, o.ts, p.trusted, p.received_ms "
        "FROM replication_origins o JOIN replication_pushes p ON p.id = o.push",
    )
    keys = ("docId", "table", "gateway", "epoch", "seq", "ts", "clockTrusted", "receivedMs")
    return [{**dict(zip(keys, row, strict=True)), "clockTrusted": bool(row[6])} for row in rows]


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


def free_port() -> int:
    """A loopback port free now (for a process restarted on the same port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
