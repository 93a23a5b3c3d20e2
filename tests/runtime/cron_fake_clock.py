"""A clock the cron tests drive: wall and monotonic time move only when told.

``advance`` moves both clocks together in steps, waking the runner at each of its nap
deadlines on the way, as real time would; ``jump_wall`` moves the wall clock alone, as
NTP stepping the clock does. ``settle`` waits (on real time, with a deadline) until the
runner has gone round its loop and no run is going.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

WALL_START_MS = 1_796_342_400_000.0  # 2026-12-04T00:00:00Z


class FakeClock:
    """A ``CronClock`` whose time moves only when the test says so."""

    def __init__(self, wall_ms: float = WALL_START_MS) -> None:
        self._wall_ms = wall_ms
        self.synced = True  # whether the wall clock claims NTP synchronisation
        self._mono_s = 1000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def wall_ms(self) -> float:
        return self._wall_ms

    def synchronised(self) -> bool:
        return self.synced

    def monotonic_s(self) -> float:
        return self._mono_s

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self._mono_s + seconds, future)
        self._sleepers.append(entry)
        try:
            await future
        finally:
            self._sleepers.remove(entry)

    def napping(self) -> bool:
        """Whether someone is asleep on this clock now."""
        return any(not f.done() for _, f in self._sleepers)

    def jump_wall(self, seconds: float) -> None:
        """Step the wall clock alone (NTP arriving); sleepers keep sleeping."""
        self._wall_ms += seconds * 1000

    async def advance(self, seconds: float, runner: Any, *, wait_runs: bool = True) -> None:
        """Let ``seconds`` pass, waking sleepers at their deadlines along the way."""
        target = self._mono_s + seconds
        while True:
            await settle(runner, self, wait_runs=wait_runs)
            due = [d for d, f in self._sleepers if not f.done()]
            step_to = min(due) if due else None
            if step_to is None or step_to > target:
                break
            self._move_to(step_to)
            for deadline, future in self._sleepers:
                if deadline <= self._mono_s and not future.done():
                    future.set_result(None)
        self._move_to(target)
        await settle(runner, self, wait_runs=wait_runs)

    async def stall(self, seconds: float, runner: Any) -> None:
        """Let ``seconds`` pass with the event loop too busy to wake anyone, then wake."""
        self._move_to(self._mono_s + seconds)
        for deadline, future in self._sleepers:
            if deadline <= self._mono_s and not future.done():
                future.set_result(None)
        await settle(runner, self)

    def _move_to(self, mono_s: float) -> None:
        self._wall_ms += (mono_s - self._mono_s) * 1000
        self._mono_s = mono_s


async def settle(
    runner: Any, clock: FakeClock, *, wait_runs: bool = True, timeout_s: float = 20.0
) -> None:
    """Wait until the runner naps on ``clock`` again and (``wait_runs``) no run is going."""
    deadline = time.monotonic() + timeout_s
    while not ((runner.running == 0 or not wait_runs) and runner.idle.is_set() and clock.napping()):
        if time.monotonic() > deadline:
            raise AssertionError("the cron runner did not settle")
        await asyncio.sleep(0.005)
