"""The WAL checkpointer: committed pages copied into the database file on a thread of
its own, so that no commit waits for the copy.

By default SQLite checkpoints inside the COMMIT that takes the WAL past 1,000 pages:
that one write, whoever's it is (an MQTT message, a dashboard's mutation), then also
waits for the copy and the database file's fsync. On a gateway draining a backlog
upstream (an outbox pruned a thousand entries at a time) that was the slow tail of
ingest latency: commits' p99 5 ms instead of 0.7 ms on an SSD, and an SD card's fsync
is slower still.

So the writer's connection runs with ``wal_autocheckpoint = 0`` and this thread runs a
PASSIVE checkpoint (it never blocks the writer or the readers; it copies what no
reader still needs) a while after commits. The while adapts: back to
``MIN_INTERVAL_S`` when a checkpoint finds more than ``BUSY_FRAMES`` frames in the WAL
(SQLite's own threshold), doubled up to ``MAX_INTERVAL_S`` when it finds fewer, so a
busy store's WAL stays near SQLite's usual size and a quiet one's few pages are not
copied (and fsynced) every second, which an SD card would pay for in wear.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Final

log = logging.getLogger("gateway.store")

MIN_INTERVAL_S: Final = 0.25
MAX_INTERVAL_S: Final = 10.0
BUSY_FRAMES: Final = 1000  # SQLite's own wal_autocheckpoint default


def without_autocheckpoint(conn: sqlite3.Connection) -> sqlite3.Connection:
    """The writer's connection: its commits leave checkpoints to the ``Checkpointer``."""
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    return conn


class Checkpointer:
    """A thread with its own connection, checkpointing after commits (``committed``)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._committed = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.interval_s = MIN_INTERVAL_S
        self.checkpoints = 0
        self.failing = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="outpost-checkpointer")
        self._thread.start()

    def committed(self) -> None:
        """A commit happened (any thread): a checkpoint is due in a while."""
        self._committed.set()

    async def close(self) -> None:
        """Stop the thread (a checkpoint under way finishes first). Safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        self._committed.set()
        await asyncio.to_thread(thread.join)

    def _main(self) -> None:
        try:
            conn = self._connect()
        except sqlite3.Error as exc:  # the writer still checkpoints when it closes
            log.warning("the WAL checkpointer could not open the store: %s", exc)
            return
        try:
            while not self._stopping.is_set():
                self._committed.wait()
                if self._stopping.wait(self.interval_s):
                    break
                self._committed.clear()  # commits from here on make the next one due
                self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # a locked file, a full disk: the next one retries
            # Said once until one succeeds: meanwhile the WAL grows instead of the file.
            log.log(
                logging.DEBUG if self.failing else logging.WARNING,
                "WAL checkpoint failed (retried after the next commits): %s",
                exc,
            )
            self.failing = True
            return
        self.failing = False
        self.checkpoints += 1
        if frames > BUSY_FRAMES:
            self.interval_s = MIN_INTERVAL_S
        else:
            self.interval_s = min(MAX_INTERVAL_S, self.interval_s * 2)
