"""The uplink yields to local work: a mutation stays quick while a backlog drains."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from edge_upstream_kit import KEY, FakeUpstream, eventually, write_app

from gateway import Gateway
from gateway.replication.client import PushClient
from gateway.replication.uplink import Uplink

BACKLOG = 20_000


async def _latencies_ms(gw: Gateway, count: int) -> list[float]:
    out = []
    for n in range(count):
        started = time.perf_counter()
        await gw.run_mutation("readings:local", {"n": n})
        out.append((time.perf_counter() - started) * 1000)
    return out


async def test_a_draining_backlog_keeps_mutations_quick(tmp_path: Path) -> None:
    upstream = FakeUpstream()
    upstream.delay_s = 0.1  # the drain outlasts the measurement however fast it gets
    await upstream.start()
    app = write_app(tmp_path / "app")
    try:
        async with Gateway.open(app, tmp_path / "d") as gw:
            for start in range(0, BACKLOG, 1000):
                await gw.run_mutation("readings:add_many", {"start": start, "count": 1000})
            idle = await _latencies_ms(gw, 100)
            uplink = Uplink(gw.store, PushClient(upstream.url), key=KEY, schema=lambda: "s")
            await uplink.start()
            try:
                await eventually(lambda: len(upstream.applied) > 0)
                draining = await _latencies_ms(gw, 100)
                assert len(upstream.applied) < BACKLOG, "drained before the measurement ended"
                await eventually(lambda: uplink.acked == BACKLOG, 60)
            finally:
                await uplink.close()
    finally:
        await upstream.stop()
    # Loose bounds (the machine is shared): the median stays in the same range as idle,
    # and no mutation waits behind a whole batch's worth of work.
    assert statistics.median(draining) < 10 * statistics.median(idle) + 20, (idle, draining)
    assert max(draining) < 500, draining
