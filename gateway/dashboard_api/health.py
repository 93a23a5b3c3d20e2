"""``health:status``: store size, bytes written (SD wear), clock trust, memory, disk.

Everything comes from memory, the file system and ``/proc/self``, read at the call: the
query reads no table, so the page polls it. The write rate is ``WearMeter``'s: samples
of ``/proc/self/io``'s ``write_bytes`` taken at each call (at most one a minute kept),
and the rate over the last hour of them, or since start while the process is younger.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from gateway.proc_stats import proc_field
from gateway.runtime.functions import RegisteredFunction
from gateway.store import Store

STATUS_PATH: Final = "_system/dashboard/health:status"
WINDOW_S: Final = 3600.0
SAMPLE_EVERY_S: Final = 60.0
PROC: Final = Path("/proc/self")


class WearMeter:
    """Bytes written per hour, from samples of a monotonic byte counter."""

    def __init__(
        self,
        written: Callable[[], float | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._written = written
        self._clock = clock
        self._samples: deque[tuple[float, float]] = deque()
        self._started = clock()

    def read(self) -> tuple[float | None, float | None]:
        """(bytes written since the process started, bytes per hour), None where unknown."""
        total = self._written()
        if total is None:
            return None, None
        now = self._clock()
        if not self._samples or now - self._samples[-1][0] >= SAMPLE_EVERY_S:
            self._samples.append((now, total))
        while len(self._samples) > 1 and now - self._samples[1][0] >= WINDOW_S:
            self._samples.popleft()
        since, base = self._samples[0]
        if now - since < SAMPLE_EVERY_S:  # too young a window: the process's whole life
            since, base = self._started, 0.0
        elapsed = max(now - since, 1.0)
        return total, (total - base) * 3600.0 / elapsed


def functions(
    store: Store, meter: WearMeter, app_error: Callable[[], str | None], proc: Path = PROC
) -> list[RegisteredFunction]:
    started = time.monotonic()

    async def status(ctx: Any, args: dict[str, Any]) -> dict[str, Any]:
        written, per_hour = meter.read()
        rss_kib = proc_field(proc / "status", "VmRSS:")
        stats = store.writer.stats
        return {
            "gatewayId": store.gateway_id,
            "nowMs": ctx.now,
            "uptimeS": time.monotonic() - started,
            "appError": app_error(),
            "store": _store_files(store.path),
            "written": {"bytes": written, "perHour": per_hour},
            "clock": {"trusted": store.clock.wall_trusted},
            "memory": {"rssBytes": None if rss_kib is None else rss_kib * 1024},
            "disk": store.disk.status(),
            "writer": {
                "commits": float(stats.commits),
                "fsyncs": float(stats.durable_commits),
                "queued": float(store.writer.queued),
            },
        }

    return [RegisteredFunction("query", "internal", status, {}, path=STATUS_PATH)]


def _store_files(db: Path) -> dict[str, float]:
    """The database file's bytes and its WAL's (what the store occupies on disk)."""
    return {"bytes": _size(db), "walBytes": _size(db.with_name(db.name + "-wal"))}


def _size(path: Path) -> float:
    try:
        return float(path.stat().st_size)
    except OSError:
        return 0.0


def proc_written(proc: Path = PROC) -> Callable[[], float | None]:
    """``write_bytes`` of ``/proc/self/io`` (None where /proc does not give it)."""
    return lambda: proc_field(proc / "io", "write_bytes:")
