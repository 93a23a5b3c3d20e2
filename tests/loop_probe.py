"""How long the event loop went without running a task: the probe of the tests that
keep big bodies and frames off the loop (HTTP and sync)."""

from __future__ import annotations

import asyncio
import time


async def loop_stalls(stop: asyncio.Event) -> float:
    """The longest the loop went without running this task (a 1 ms sleep's overshoot)."""
    worst = 0.0
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        worst = max(worst, time.perf_counter() - started - 0.001)
    return worst
