"""Hybrid logical clock for commit timestamps (DESIGN decision 4).

Timestamps are u64 nanoseconds. They never go backwards (the last one is persisted by
every batch and restored on open), and they never follow a wall clock that leaps into
an absurd future while the clock is not known to be NTP-synchronised: a Pi without an
RTC can boot with any date, and one bad timestamp would otherwise poison every later
commit. A peer's timestamp is folded in only within ``max_drift_ns`` of our own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

NS_PER_S = 1_000_000_000
# A forward leap of the wall clock larger than this, on a clock not known to be
# NTP-synchronised, is not followed: the HLC keeps counting from its last value.
DEFAULT_MAX_FORWARD_JUMP_NS = 24 * 3600 * NS_PER_S
# A peer's (or client's) timestamp ahead of our clock by more than this is refused.
DEFAULT_MAX_DRIFT_NS = 60 * NS_PER_S
# Beyond this instant (2200-01-01) a wall reading is treated as garbage, synced or not.
ABSURD_FUTURE_NS = 7_258_118_400 * NS_PER_S


class ClockDriftError(ValueError):
    """A remote timestamp is too far ahead of the local clock to be folded in."""


@dataclass(frozen=True)
class ClockReading:
    """One timestamp and whether it followed a trusted wall clock."""

    ts_ns: int
    wall_trusted: bool


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def ntp_synchronised() -> bool:
    """True when the kernel reports the system clock as synchronised (adjtimex(2))."""
    libc = _libc()
    if libc is None:
        return False
    try:
        buf = ctypes.create_string_buffer(512)  # larger than struct timex on any ABI
        state = int(libc.adjtimex(buf))
    except AttributeError:
        return False
    time_error = 5  # TIME_ERROR: the clock is not synchronised
    return bool(state >= 0 and state != time_error)


class HybridClock:
    """Monotonic commit timestamps that follow a trusted wall clock."""

    def __init__(
        self,
        last_ts_ns: int = 0,
        *,
        wall_ns: Callable[[], int] = time.time_ns,
        synced: Callable[[], bool] = ntp_synchronised,
        max_forward_jump_ns: int = DEFAULT_MAX_FORWARD_JUMP_NS,
        max_drift_ns: int = DEFAULT_MAX_DRIFT_NS,
    ) -> None:
        self._last = last_ts_ns
        self._wall_ns = wall_ns
        self._synced = synced
        self._max_jump = max_forward_jump_ns
        self._max_drift = max_drift_ns
        self.wall_trusted = True

    @property
    def last_ts_ns(self) -> int:
        """The newest timestamp handed out (or restored at open)."""
        return self._last

    def peek(self) -> ClockReading:
        """The next timestamp, without advancing: the writer advances only after COMMIT."""
        return self._next_after(self._last)

    def next_after(self, ts_ns: int) -> ClockReading:
        """The next timestamp after ``ts_ns`` (a candidate inside an uncommitted batch)."""
        return self._next_after(max(ts_ns, self._last))

    def next_ts_after(self, ts_ns: int) -> int:
        """``next_after(ts_ns).ts_ns`` without the reading object (the writer's hot path)."""
        last = ts_ns if ts_ns > self._last else self._last
        wall = self._wall_ns()
        if last < wall < ABSURD_FUTURE_NS and (not last or wall - last <= self._max_jump):
            self.wall_trusted = True
            return wall
        return self._next_after(last).ts_ns

    def advance_to(self, ts_ns: int) -> None:
        """Record that ``ts_ns`` is durable; later timestamps are strictly greater."""
        if ts_ns > self._last:
            self._last = ts_ns

    def observe(self, remote_ts_ns: int) -> None:
        """Fold in a peer's timestamp, refusing one absurdly far ahead of us."""
        limit = max(self._wall_ns(), self._last) + self._max_drift
        if remote_ts_ns > limit:
            raise ClockDriftError(
                f"timestamp {remote_ts_ns} is more than {self._max_drift // NS_PER_S} s ahead "
                "of this gateway's clock; check the peer's clock (NTP)"
            )
        self.advance_to(remote_ts_ns)

    def _next_after(self, last: int) -> ClockReading:
        wall = self._wall_ns()
        trusted = self._wall_is_sane(wall, last)
        self.wall_trusted = trusted
        if trusted and wall > last:
            return ClockReading(wall, True)
        return ClockReading(last + 1, trusted)

    def _wall_is_sane(self, wall: int, last: int) -> bool:
        if wall >= ABSURD_FUTURE_NS:
            return False
        if last and wall - last > self._max_jump:
            return self._synced()
        return True
