"""Churn soak (issue 8, section 6): sync clients connecting, subscribing and dropping
against a real ``outpost serve`` process; its memory stays flat and nothing is left
behind.

Clients live in ``sync_swarm.py churn`` processes (raw protocol over aiohttp, loopback):
each connects, subscribes to one to three ``notes:count`` queries (some with 5 kB
arguments), sometimes writes, holds for up to ``sync_swarm.HOLD_S``, and drops: a clean
close, a reset (SO_LINGER 0), or a cut in the middle of a frame. The test samples the
server's ``RssAnon`` and descriptor count from ``/proc`` every second.

What must hold:
- ``RssAnon`` at the end of the churn is within ``rss_bound_kb`` of its value once the
  churn is under way (``warm_s`` in: the client population, its buffers and the
  allocator's pools are in place by then): 16 MB in CI (15 s, ~1,000 connections), 24
  MB in the soak (minute 1 to minute 10, ~100,000-150,000 connections). A leak scales
  with connections: 24 MB over 150,000 is 160 bytes each, while one leaked session
  (~27 kB, ``bench/sync_memory.py``) per connection would be gigabytes. What does grow
  without a leak: SQLite's page caches (2 MiB each for the writer and two readers) as
  the clients' writes grow the notes table, and allocator fragmentation; an object
  census of a churned in-process server (before/after 4,000 connections) showed no
  type growing with connections.
- After every client is gone, the server holds no more descriptors than before the
  churn (each leaked session would keep its socket) and serves a fresh client.
- The server's log has no traceback, error or "unexpected" line.

There is no public count of sync sessions or tasks in a served process (nothing is
exposed for it); descriptors stand for sessions, since a session ends with its socket.

CI tier: 100 clients for 15 s. Soak tier (``pytest -m soak`` or ``OUTPOST_SOAK=1``):
1,000 clients for 10 minutes, RssAnon compared at minute 1 and minute 10.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from e2e.conftest import soak_selected
from sync.hostile_kit import (
    ServedProcess,
    Swarm,
    fd_count,
    outpost_serve,
    raise_fd_limit,
    status_kb,
    until,
    write_notes_app,
)

CI = {"clients": 100, "processes": 2, "duration_s": 15.0, "warm_s": 5.0, "rss_bound_kb": 16 << 10}
SOAK = {"clients": 1000, "processes": 4, "duration_s": 600.0, "warm_s": 60.0}
SOAK["rss_bound_kb"] = 24 << 10
SAMPLE_S = 1.0  # how often the server's figures are read (sampling, not waiting)


@pytest.fixture
def soak_tier(request: pytest.FixtureRequest) -> None:
    if not soak_selected(request.config):
        pytest.skip("soak tier: select it with `pytest -m soak` or OUTPOST_SOAK=1")


async def test_sync_churn_ci(tmp_path: Path) -> None:
    await churn(tmp_path, **CI)  # type: ignore[arg-type]


@pytest.mark.soak
@pytest.mark.timeout(SOAK["duration_s"] + 300)
async def test_sync_churn_soak(soak_tier: None, tmp_path: Path) -> None:
    await churn(tmp_path, **SOAK)  # type: ignore[arg-type]


async def churn(
    tmp_path: Path,
    *,
    clients: int,
    processes: int,
    duration_s: float,
    warm_s: float,
    rss_bound_kb: int,
) -> None:
    raise_fd_limit()  # inherited by the server and the client processes
    app = write_notes_app(tmp_path)
    with outpost_serve(app, tmp_path / "data", tmp_path / "serve.log") as server:
        await fresh_client(server)
        idle_fds, idle_rss = fd_count(server.pid), status_kb(server.pid)
        seed = random.randrange(2**32)
        url = f"{server.url}/api/1.48.0/sync"
        per = str(clients // processes)
        swarms = [
            Swarm("churn", url, per, str(duration_s), str(seed + i)) for i in range(processes)
        ]
        try:
            samples = await sample(server, swarms, duration_s + 60)
            stats: Counter[str] = Counter()
            for swarm in swarms:
                line = await swarm.lines.next("stats", 60)
                stats.update(json.loads(line.split(" ", 1)[1]))
                assert await swarm.exited(30) == 0
        finally:
            for swarm in swarms:
                swarm.kill()
        # Every client is gone: the server lets go of their sockets (a half-open one by
        # the protocol ping, 20 s, at the latest).
        await until(lambda: fd_count(server.pid) <= idle_fds, "the clients' descriptors close", 45)
        await fresh_client(server)
        warm = next(rss for t, rss, _ in samples if t >= warm_s)
        during = [(t, rss) for t, rss, _ in samples if t <= duration_s]
        end_rss = during[-1][1]
        report = (
            f"churn seed {seed}: {clients} clients x {duration_s:.0f} s, "
            f"{stats['connected']} connections ({stats['clean']} clean, {stats['reset']} "
            f"reset, {stats['cut']} cut mid-frame), {stats['transitions']} first results\n"
            f"  RssAnon kB: idle {idle_rss}, at {warm_s:.0f} s {warm}, at "
            f"{during[-1][0]:.0f} s {end_rss} ({end_rss - warm:+d}), peak "
            f"{max(r for _, r in during)}, after {status_kb(server.pid)}\n"
            f"  fds: idle {idle_fds}, peak {max(f for *_, f in samples)}, after "
            f"{fd_count(server.pid)}\n  client stats {json.dumps(dict(sorted(stats.items())))}"
        )
        print(report)
        assert stats["connected"] >= clients, report
        assert end_rss - warm <= rss_bound_kb, report
        assert not server.problems(), "\n".join(server.problems()[:20])


async def sample(
    server: ServedProcess, swarms: list[Swarm], deadline_s: float
) -> list[tuple[float, int, int]]:
    """``(seconds since start, RssAnon kB, descriptors)`` every ``SAMPLE_S`` while any
    client process runs."""
    started = time.monotonic()
    samples: list[tuple[float, int, int]] = []

    def done() -> bool:
        now = time.monotonic() - started
        if not samples or now - samples[-1][0] >= SAMPLE_S:
            samples.append((now, status_kb(server.pid), fd_count(server.pid)))
        return all(s.proc.poll() is not None for s in swarms)

    await until(done, "the client processes finish", deadline_s)
    return samples


async def fresh_client(server: ServedProcess) -> None:
    """A new client subscribes and gets its first result: the server serves."""
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{server.url}/api/1.48.0/sync")
        await ws.send_json({"type": "Connect", "sessionId": "fresh", "connectionCount": 0})
        add = {"type": "Add", "queryId": 0, "udfPath": "notes:count", "args": [{"topic": "x"}]}
        modify = {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1}
        await ws.send_json({**modify, "modifications": [add]})
        while True:
            frame = await ws.receive_json(timeout=10)
            if frame["type"] == "Transition":
                assert frame["modifications"][0]["type"] == "QueryUpdated", frame
                break
        await ws.close()
