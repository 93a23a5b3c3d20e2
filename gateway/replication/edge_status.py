"""``_system/replication:status``: what ``outpost status`` shows of this gateway (admin only).

An internal system query, so ``outpost status`` reaches it through the ordinary
``POST /api/query`` with the admin key: no new HTTP route, and the admin check, the
error shape and the redaction are the ones every call already has. It answers from two
places: the uplink's memory (link state and since when, last acknowledged seq, drain
rate) and the outbox table read in the query's own snapshot (backlog entries, bytes, the
oldest entry's age), which is also what ``read_backlog`` gives the CLI offline from the
store file when the gateway is not running.

The downlink's part (``UplinkView.down``) is its memory too: link state, each ``down``
table's durable cursor, whether it is caught up, and the lag.

The query records no read set for these, so a live subscription to it would not follow
the uplink; it is meant to be polled (``outpost status``), not subscribed to.
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from gateway.replication.outbox import CURSOR_KEY
from gateway.runtime.functions import RegisteredFunction
from gateway.store import outbox_log
from gateway.store.quota import BYTES_KEY, DROPPED_KEY, ROW_BYTES_SQL

STATUS_PATH: Final = "_system/replication:status"
# The window of the drain rate: long enough to smooth batch bursts, short enough to
# show a stall within a minute.
DRAIN_WINDOW_S: Final = 60.0
_NS_PER_MS: Final = 1_000_000


class DrainMeter:
    """Entries acknowledged over the last ``window_s`` (a deque of (time, count))."""

    def __init__(
        self, window_s: float = DRAIN_WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window_s = window_s
        self._clock = clock
        self._acks: deque[tuple[float, int]] = deque()

    def record(self, entries: int) -> None:
        self._acks.append((self._clock(), entries))
        self._expire()

    def rate(self) -> float:
        """Entries per second over the window (0.0 when nothing was acknowledged)."""
        self._expire()
        return sum(n for _, n in self._acks) / self._window_s

    def _expire(self) -> None:
        horizon = self._clock() - self._window_s
        while self._acks and self._acks[0][0] < horizon:
            self._acks.popleft()


def read_backlog(conn: sqlite3.Connection, now_ms: float) -> dict[str, Any]:
    """The unacknowledged outbox: entries, bytes (counted as the outbox quota counts
    them), the oldest entry's age, the acknowledged and newest seqs, entries dropped."""
    acked = int(_meta(conn, CURSOR_KEY))
    entries = outbox_log.union_after(f"seq, ts, {ROW_BYTES_SQL} AS size", outbox_log.segments(conn))
    count, size, oldest_ts, newest = conn.execute(
        f"SELECT count(*), coalesce(sum(size), 0), min(ts), coalesce(max(seq), 0) FROM ({entries})",
        (acked,),
    ).fetchone()
    oldest_ms = None if oldest_ts is None else oldest_ts / _NS_PER_MS
    return {
        "entries": float(count),
        "bytes": float(size),
        # HLC timestamps follow the wall clock while it is sane, so this is an age in
        # wall time (0 if the clock went back since the entry was stamped).
        "oldestAgeMs": None if oldest_ms is None else max(0.0, now_ms - oldest_ms),
        "acked": float(acked),
        "newest": float(max(int(newest), acked)),
        "quotaBytes": _meta(conn, BYTES_KEY),  # the quota's running count
        "dropped": _meta(conn, DROPPED_KEY),  # by outbox_overflow = "drop_oldest"
    }


def _meta(conn: sqlite3.Connection, key: str) -> float:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return 0.0 if row is None else float(row[0])


class UplinkView:
    """What the status query reads of the uplink; ``None`` uplink: replication is off."""

    def __init__(self, upstream_url: str, uplink: Any | None) -> None:
        self.upstream_url = upstream_url
        self.uplink = uplink  # gateway.replication.uplink.Uplink (Any: no import cycle)
        self.downlink: Any | None = None  # gateway.replication.downlink.Downlink

    def down(self, now_ms: float) -> dict[str, Any] | None:
        """The downlink: link state, each table's cursor, and lag (None: caught up),
        the time since the latest applied change while a table still has more to pull
        or the link is not up. None when no downlink runs."""
        down = self.downlink
        if down is None:
            return None
        caught_up = down.state == "up" and all(down.caught_up.get(t) for t in down.tables)
        last = down.last_applied_ms
        lag = None if caught_up else (None if last is None else max(0.0, now_ms - last))
        return {
            "state": down.state,
            "sinceMs": down.state_since_ms,
            "tables": {t: {"cursor": down.cursors.get(t, 0.0)} for t in down.tables},
            "applied": float(down.applied),
            "lastAppliedMs": last,
            "caughtUp": caught_up,
            "lagMs": lag,
        }

    def link(self) -> dict[str, Any]:
        up = self.uplink
        if up is None:
            return {"state": "off", "sinceMs": None, "upstream": None, "drainRate": 0.0}
        return {
            "state": up.state,
            "sinceMs": up.state_since_ms,
            "upstream": self.upstream_url,
            "drainRate": up.drain.rate(),
            "batches": float(up.batches),
        }


def status_function(
    view: UplinkView,
    gateway_id: Callable[[], str],
    epoch: Callable[[], int],
    *,
    hub: bool,
    quota: dict[str, Any],
) -> RegisteredFunction:
    """The internal query; ``gateway_id`` and ``epoch`` are read at each call (an
    import bumps the epoch while the gateway runs)."""

    async def status(ctx: Any, args: dict[str, Any]) -> dict[str, Any]:
        conn = ctx._ex.tx.conn  # noqa: SLF001 - change_log is below ctx.db (not a table)
        return {
            "gateway": gateway_id(),
            "epoch": float(epoch()),
            "hub": hub,
            "nowMs": ctx.now,
            "link": view.link(),
            "backlog": read_backlog(conn, ctx.now),
            "quota": quota,
            "downlink": view.down(ctx.now),
        }

    return RegisteredFunction("query", "internal", status, {}, path=STATUS_PATH)
