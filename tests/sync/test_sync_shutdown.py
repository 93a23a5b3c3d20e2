"""Shutdown closes every sync socket at once, within ``shutdown_timeout_s`` (issue 8,
section 5), however many of their clients have stopped reading.

Before: ``close_sync_sockets`` closed them one after another, and each close of a
stopped client waited on the peer (the drain of a full buffer, then up to 10 s for a
close frame that never comes): with a hundred stopped clients, shutdown took minutes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from sync.hostile_kit import Swarm, socket_count, until
from sync.test_sync_slow_clients import BLOBS, SCHEMA

from gateway import Gateway, Settings
from gateway.http import HttpServer

SHUTDOWN_S = 3.0
PROCESSES = 4
SOCKETS_PER_PROCESS = 50  # 200 sockets
STOPPED = 2  # processes SIGSTOPped: 100 sockets that read nothing
BODY_BYTES = 100_000  # with a 4 KB receive buffer, a few such frames fill the kernel's
MAX_WRITES = 60


async def test_sync_shutdown_closes_200_sockets_within_the_bound_with_100_stopped(
    make_app: Any, tmp_path: Path
) -> None:
    settings = Settings(shutdown_timeout_s=SHUTDOWN_S)
    gw = await Gateway.start(make_app(schema=SCHEMA, blobs=BLOBS), tmp_path / "data", settings)
    http = HttpServer(gw, settings=settings)
    swarms: list[Swarm] = []
    try:
        port = await http.start("127.0.0.1", 0)
        sockets_idle = socket_count(os.getpid())
        url = f"http://127.0.0.1:{port}/api/1.48.0/sync"
        for i in range(PROCESSES):
            small = ["--small-rcvbuf"] if i < STOPPED else []
            swarms.append(Swarm("hold", url, str(SOCKETS_PER_PROCESS), *small))
        for swarm in swarms:
            await swarm.lines.next("ready")
        assert len(gw.sync.sessions) == PROCESSES * SOCKETS_PER_PROCESS
        for swarm in swarms[:STOPPED]:
            swarm.stop()
        for n in range(MAX_WRITES):  # every socket gets them; stopped ones' buffers fill
            await gw.run_mutation("blobs:put", {"n": float(n), "size": float(BODY_BYTES)})
            if stuck_sessions(gw) >= STOPPED * SOCKETS_PER_PROCESS:
                break
        else:
            raise AssertionError(f"only {stuck_sessions(gw)} sockets full after {n + 1} writes")

        started = time.monotonic()
        await http.close()
        await gw.close()
        took = time.monotonic() - started
        print(f"shutdown with {len(swarms) * SOCKETS_PER_PROCESS} sockets took {took:.2f} s")
        assert took < SHUTDOWN_S + 2.0, f"shutdown took {took:.1f} s"
        # The stopped clients' connections were cut, not left to asyncio to flush for as
        # long as they do not read: their descriptors are closed already.
        await until(lambda: socket_count(os.getpid()) <= sockets_idle, "the server's sockets close")
        for swarm in swarms[STOPPED:]:  # the clients that read saw 1001, going away
            closed = await swarm.lines.next("closed", 10)
            assert set(json.loads(closed.split(" ", 1)[1])) == {1001}, closed
    finally:
        for swarm in swarms:
            swarm.kill()
        await http.close()
        await gw.close()


def stuck_sessions(gw: Gateway) -> int:
    """Sessions whose client does not take their frames: a write waits on a full socket,
    or frames wait behind it."""
    return sum(1 for s in gw.sync.sessions if s._sending or len(s.outbox))  # noqa: SLF001
