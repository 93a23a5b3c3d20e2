"""The disk-full state: entered when a write meets ENOSPC, left by itself when space
returns.

Entering (on the writer's thread, the moment a statement or COMMIT fails with
SQLITE_FULL or ENOSPC, or with an I/O error while almost nothing is free): the reserve
file is deleted (``reserve.py``), one warning is logged, and every write from then on is
refused at once with ``DiskFullError``, whose text says which directory, how full it is
and what to free. Nothing committed before is touched: the failed batch rolled back,
and reads go on as before.

Leaving: while in the state, a task on the event loop looks at the directory's free
space every ``check_interval_s`` (one ``statvfs``: cheap enough for a Pi). Once more is
free than the reserve plus ``MARGIN_BYTES``, the reserve is written again and the state
is left (one info line); writes are accepted with no restart.

At start the reserve is made only while ``MARGIN_BYTES`` stay free after it (else the
watch makes it once there is room), and on a disk with less than that free the reserve
is given back before SQLite opens the store: opening the WAL needs a little room, and a
start that failed for want of it would fail at every restart.

Thread safety: ``full`` is one attribute, read by the writer and the loop and written
under ``_lock`` (entering happens on the writer's thread, leaving on the loop's).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from gateway.errors import DiskFullError
from gateway.store.reserve import Reserve, free_bytes, is_no_space

log = logging.getLogger("gateway.store")

# Room wanted beyond the reserve before writes resume: a few batches' worth, so the
# state is not left only to be entered again by the next commit.
MARGIN_BYTES: Final = 1024 * 1024
CHECK_INTERVAL_S: Final = 5.0
_SQLITE_IOERR: Final = 10
_SQLITE_FULL: Final = 13


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the disk is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFullError) or is_no_space(current):
            return True
        code = getattr(current, "sqlite_errorcode", None)
        if isinstance(current, sqlite3.Error) and code is not None and code & 0xFF == _SQLITE_FULL:
            return True
        inner = getattr(current, "error", None)  # the runtime's wrapper of a handler's error
        current = inner if isinstance(inner, BaseException) else current.__cause__
    return False


class DiskGuard:
    """Whether the data directory's disk is full, and the way back out."""

    def __init__(
        self,
        directory: Path,
        reserve: Reserve,
        *,
        check_interval_s: float = CHECK_INTERVAL_S,
        margin_bytes: int = MARGIN_BYTES,
    ) -> None:
        self.directory = directory
        self.reserve = reserve
        self.check_interval_s = check_interval_s
        self.margin_bytes = margin_bytes
        self.full = False
        self.entered = 0  # times the state was entered (tests, metrics)
        # Called on the writer's thread on entering (the store: a checkpoint is due, now
        # that the reserve's room lets it copy the WAL into the file).
        self.on_full: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch: asyncio.Task[None] | None = None
        self._cleared = asyncio.Event()
        self._closed = False

    def make_room_to_open(self) -> None:
        """Before SQLite opens the store (a blocking call): on a disk with less than the
        margin free, give the reserve back. Opening needs room for the WAL and its index,
        and a start that fails for want of it would fail again at every restart."""
        try:
            free = free_bytes(self.directory)
        except OSError:
            return
        if free < self.margin_bytes and self.reserve.release():
            log.warning(
                "the disk holding %s has %d bytes free: the reserve file was released so "
                "that the gateway can start; free some space on that filesystem",
                self.directory,
                free,
            )

    async def start(self) -> None:
        """Create the reserve if missing (on a thread) and remember the loop the watch
        runs on. No room for it is one warning, not a failed start: writes go on, and
        the watch makes the reserve once there is room (or the disk fills first)."""
        self._loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(self._ensure_with_room)
        except OSError as exc:
            log.warning(
                "could not create the disk reserve %s (%d bytes): %s; free some space in "
                "%s (it is made once there is room)",
                self.reserve.path,
                self.reserve.size_bytes,
                exc,
                self.directory,
            )
            self._start_watch()  # not full: the watch only makes the reserve

    def _ensure_with_room(self) -> None:
        """Make the reserve only where the disk keeps the margin free after it: taking
        the last bytes back would fail the writes it is there to protect."""
        reserve = self.reserve
        if reserve.size_bytes and not reserve.held():
            free = free_bytes(self.directory)
            if free <= reserve.size_bytes + self.margin_bytes:
                raise OSError(errno.ENOSPC, f"only {free} bytes free")
        reserve.ensure()

    def refusal(self) -> DiskFullError:
        """The error every write gets while the disk is full: what, where, what to do."""
        try:
            free = f"{free_bytes(self.directory) / 1048576:.1f} MiB free"
        except OSError:
            free = "free space unknown"
        wanted = (self.reserve.size_bytes + self.margin_bytes) / 1048576
        return DiskFullError(
            f"the disk holding the data directory {self.directory} is full ({free}); "
            "writes are refused and were not applied, reads still work. Delete files on "
            f"that filesystem (old logs, backups, exports) until more than {wanted:.1f} MiB "
            "is free: writes resume by themselves, with no restart"
        )

    def free_bytes(self) -> int:
        """Bytes free for the gateway on the directory's filesystem (0 if unknown)."""
        try:
            return free_bytes(self.directory)
        except OSError:
            return 0

    def status(self) -> dict[str, Any]:
        """The state as JSON-able values (``outpost status``): whether writes are
        refused, the free bytes, and how many must be free for them to resume."""
        return {
            "full": self.full,
            "directory": str(self.directory),
            "freeBytes": float(self.free_bytes()),
            "resumeAboveBytes": float(self.reserve.size_bytes + self.margin_bytes),
        }

    def check(self) -> None:
        """Raise ``DiskFullError`` if writes are refused now."""
        if self.full:
            raise self.refusal()

    def failed(self, exc: BaseException) -> bool:
        """Called on the writer's thread with a write's failure: True if it was the disk
        being full (the state is then entered, if it was not already)."""
        if not (is_disk_full(exc) or self._io_error_on_a_full_disk(exc)):
            return False
        with self._lock:
            if self.full:
                return True
            self.full = True
            self.entered += 1
        released = self.reserve.release()
        log.warning(
            "the disk holding %s is full (%s): writes are refused until space is freed%s",
            self.directory,
            exc,
            "; the reserve file was released" if released else "",
        )
        if self.on_full is not None:
            self.on_full()
        if self._loop is not None and not self._closed:
            with contextlib.suppress(RuntimeError):  # the loop is gone (interpreter exit)
                self._loop.call_soon_threadsafe(self._start_watch)
        return True

    def _io_error_on_a_full_disk(self, exc: BaseException) -> bool:
        """SQLite reports some writes that meet ENOSPC as I/O errors (growing the WAL's
        index, ``SQLITE_IOERR_SHMSIZE``): one with less than the margin free is taken
        for the disk being full, which is what the user has to fix."""
        code = getattr(exc, "sqlite_errorcode", None)
        if not isinstance(exc, sqlite3.Error) or code is None or code & 0xFF != _SQLITE_IOERR:
            return False
        return self.free_bytes() < self.margin_bytes

    async def wait_writable(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until writes are accepted; True if they are."""
        if not self.full:
            return True
        if self._cleared.is_set():  # from the last time: the watch has not cleared it yet
            self._cleared.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._cleared.wait()
        return not self.full

    async def close(self) -> None:
        """Stop watching. Safe to call twice."""
        self._closed = True
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    def _start_watch(self) -> None:
        self._cleared.clear()
        if self._closed or (self._watch is not None and not self._watch.done()):
            return
        self._watch = asyncio.get_running_loop().create_task(
            self._watch_space(), name="outpost-disk-watch"
        )

    async def _watch_space(self) -> None:
        wanted = self.reserve.size_bytes + self.margin_bytes
        while True:
            await asyncio.sleep(self.check_interval_s)
            try:
                free = await asyncio.to_thread(free_bytes, self.directory)
                if free <= wanted:
                    continue
                await asyncio.to_thread(self.reserve.ensure)
            except OSError as exc:  # raced with another writer of the disk: next look
                log.debug("disk still too full to leave the disk-full state: %s", exc)
                continue
            break
        with self._lock:
            was_full, self.full = self.full, False
        self._cleared.set()
        if was_full:
            log.info(
                "space is free again on the disk holding %s (%.1f MiB): writes are accepted",
                self.directory,
                free / 1048576,
            )
        else:
            log.info("the disk reserve %s was made, now that there is room", self.reserve.path)
