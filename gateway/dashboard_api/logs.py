"""The dashboard's log: the last ``CAPACITY`` function log lines and gateway log records.

Two ways in: the runtime's ``log_sink`` hands over every top-level call's log lines (HTTP,
sync, MQTT, scheduler, crons; not live query reruns), and a ``logging.Handler`` on the
root logger copies the process's records. A record that carries ``outpost_function``
(a scheduled or MQTT call's line, which the runtime also logs) is skipped there: the sink
already has it. Both may run on the writer thread, so appends hold a lock.

Every message passes ``redact`` (admin and upstream keys become ``[redacted]``), as every
line written to the journal does.

``logs:recent`` reads no table but is live all the same: it records a read of the pseudo
key ``LOG_KEY``, and ``LiveNotice`` (the ring's ``on_added``) tells the sync engine that
key changed (``SubscriptionEngine.touch``), from whatever thread the entry came, at most
every ``NOTICE_EVERY_S``: a burst of lines costs a few reruns, not one each, and nothing
reruns while no page has the Logs tab open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from gateway.redact import redact
from gateway.runtime.functions import RegisteredFunction
from gateway.schema import v

RECENT_PATH: Final = "_system/dashboard/logs:recent"
# The pseudo key ``logs:recent`` reads (no index has a negative id).
LOG_KEY: Final = (-1, b"dashboard-log")
NOTICE_EVERY_S: Final = 0.25
CAPACITY: Final = 1000
MAX_MESSAGE_CHARS: Final = 4000
DEFAULT_LIMIT: Final = 200
LEVELS: Final = ("DEBUG", "INFO", "WARN", "ERROR")
_FROM_LOGGING: Final = {"WARNING": "WARN", "CRITICAL": "ERROR"}
_FROM_LINE: Final = {"LOG": "INFO"}


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    time_ms: float
    source: str  # "function" | "gateway"
    level: str
    name: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": float(self.seq),
            "timeMs": self.time_ms,
            "source": self.source,
            "level": self.level,
            "name": self.name,
            "message": self.message,
        }


class LogRing:
    """A bounded, numbered, thread-safe ring of log entries."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._entries: deque[Entry] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._seq = 0
        self.handler = _RingHandler(self)
        self.on_added: Callable[[], None] | None = None  # after each entry, any thread

    def add(self, source: str, level: str, name: str, message: str) -> None:
        message = redact(message)  # keys stay out of the page as out of the journal
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + " (truncated)"
        with self._lock:
            self._seq += 1
            self._entries.append(Entry(self._seq, time.time() * 1000, source, level, name, message))
        notice = self.on_added
        if notice is not None:
            notice()

    def add_lines(self, path: str, lines: list[str]) -> None:
        """A call's ``logLines`` (``[LEVEL] text``) as function entries."""
        for line in lines:
            level, text = _split_line(line)
            self.add("function", level, path, text)

    def recent(self, after: int, limit: int, keep: Any = None) -> tuple[list[Entry], int, int]:
        """Entries after seq ``after`` that ``keep`` accepts (the newest ``limit``), the
        last seq, the oldest seq held."""
        with self._lock:
            entries = list(self._entries)
            last = self._seq
        oldest = entries[0].seq if entries else last + 1
        chosen = [e for e in entries if e.seq > after and (keep is None or keep(e))]
        return chosen[-limit:], last, oldest


class LiveNotice:
    """``touch([LOG_KEY])`` on ``loop``, ``every_s`` after the first of a burst of calls;
    callable from any thread. ``close`` stops it (a notice due is dropped)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        touch: Callable[[list[tuple[int, bytes]]], None],
        every_s: float = NOTICE_EVERY_S,
    ) -> None:
        self._loop = loop
        self._touch = touch
        self._every_s = every_s
        self._pending = False  # a notice is on its way (a racing second one is harmless)
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def __call__(self) -> None:
        if self._pending or self._closed:
            return
        self._pending = True
        with contextlib.suppress(RuntimeError):  # the loop is closing: nobody to tell
            self._loop.call_soon_threadsafe(self._arm)

    def _arm(self) -> None:
        if not self._closed:
            self._timer = self._loop.call_later(self._every_s, self._fire)

    def _fire(self) -> None:
        self._pending = False
        self._timer = None
        self._touch([LOG_KEY])

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _RingHandler(logging.Handler):
    def __init__(self, ring: LogRing) -> None:
        super().__init__(logging.NOTSET)
        self._ring = ring

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "outpost_function", None) is not None:
            return
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            message += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        level = _FROM_LOGGING.get(record.levelname, record.levelname)
        self._ring.add("gateway", level, record.name, message)


def _split_line(line: str) -> tuple[str, str]:
    if line.startswith("[") and "] " in line:
        tag, _, text = line[1:].partition("] ")
        return _FROM_LINE.get(tag, tag), text
    return "INFO", line


_ARGS: Final = {
    "after": v.optional(v.float64()),
    "limit": v.optional(v.float64()),
    "source": v.optional(v.union(v.literal("function"), v.literal("gateway"))),
    "level": v.optional(v.union(*(v.literal(level) for level in LEVELS))),
    "search": v.optional(v.string()),
}


def functions(ring: LogRing) -> list[RegisteredFunction]:
    async def recent(ctx: Any, args: dict[str, Any]) -> dict[str, Any]:
        ctx._ex.read_set.point(*LOG_KEY)  # noqa: SLF001 - a live query of no table
        limit = int(min(max(args.get("limit", DEFAULT_LIMIT), 1), CAPACITY))
        entries, last, oldest = ring.recent(int(args.get("after", 0)), limit, _filter(args))
        return {
            "entries": [e.to_json() for e in entries],
            "lastSeq": float(last),
            "oldestSeq": float(oldest),
        }

    return [RegisteredFunction("query", "internal", recent, _ARGS, path=RECENT_PATH)]


def _filter(args: dict[str, Any]) -> Any:
    source = args.get("source")
    floor = LEVELS.index(args["level"]) if "level" in args else 0
    needle = args.get("search", "").lower()

    def keep(entry: Entry) -> bool:
        if source is not None and entry.source != source:
            return False
        rank = LEVELS.index(entry.level) if entry.level in LEVELS else len(LEVELS) - 1
        if rank < floor:
            return False
        return not needle or needle in entry.name.lower() or needle in entry.message.lower()

    return keep
