"""The clocks the cron runner reads: wall time for schedules, monotonic time for waits.

A seam, not a mock: ``SystemClock`` is the real one and tests hand the runner their own
object with the same three methods, so no test sleeps for real.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from gateway.store.hlc import ntp_synchronised


class CronClock(Protocol):
    """What the runner needs from time."""

    def wall_ms(self) -> float:
        """The wall clock (ms since the epoch, UTC); it may jump."""

    def monotonic_s(self) -> float:
        """Seconds on a clock that never jumps (its origin is arbitrary)."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on the monotonic clock."""

    def synchronised(self) -> bool:
        """Whether the wall clock is known to be right (NTP-synchronised)."""


class SystemClock:
    """``time.time``, ``time.monotonic`` and ``asyncio.sleep`` (which runs on the loop's
    monotonic clock, so a wall-clock jump neither cuts a wait short nor stretches it)."""

    def wall_ms(self) -> float:
        return time.time() * 1000

    def monotonic_s(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def synchronised(self) -> bool:
        return ntp_synchronised()
