"""A peer that stops reading cannot keep a descriptor and its unsent bytes forever.

A stopped client (SIGSTOP: a crashed board behind a NAT looks the same) misses the
protocol pings and its session ends. Before: asyncio's ``transport.close`` waits to
flush the bytes still buffered for it, so the connection, its descriptor and those
bytes stayed for as long as the peer did not read (forever, for one that never will).
Now the close cuts a connection with bytes still waiting.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sync.hostile_kit import Swarm, socket_count, until
from sync.sync_kit import serving
from sync.test_sync_slow_clients import BLOBS, SCHEMA

from gateway import Gateway, Settings
from gateway.sync import websocket

BODY_BYTES = 100_000
MAX_WRITES = 80


def stuck(gw: Gateway) -> int:
    """Sessions whose sender waits on a full socket."""
    return sum(1 for s in gw.sync.sessions if s._sending)  # noqa: SLF001


async def test_sync_a_stopped_peer_dropped_by_pings_leaves_no_descriptor(
    make_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(schema=SCHEMA, blobs=BLOBS)
    async with serving(app, tmp_path / "data", Settings()) as api:
        sockets_idle = socket_count(os.getpid())
        monkeypatch.setattr(websocket, "PROTOCOL_PING_S", 0.5)  # for sockets opened now
        url = f"http://127.0.0.1:{api.port}/api/1.48.0/sync"
        peer = Swarm("hold", url, "1", "--small-rcvbuf")
        try:
            await peer.lines.next("ready")
            peer.stop()
            for n in range(MAX_WRITES):
                await api.gateway.run_mutation("blobs:put", {"n": n, "size": BODY_BYTES})
                if stuck(api.gateway):
                    break
            else:
                raise AssertionError(f"the stopped peer's socket never filled ({n + 1} writes)")
            await until(lambda: not api.gateway.sync.sessions, "the pings drop the peer", 15)
            await until(lambda: socket_count(os.getpid()) <= sockets_idle, "its socket closes")
        finally:
            peer.kill()
