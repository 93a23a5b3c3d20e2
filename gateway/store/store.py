"""The store: one SQLite file, one writer thread, a few reader threads.

Opening claims the data directory (``datadir.claim``: one process per directory),
checks the file, then starts the threads; a failure at any step raises one
``StoreError`` after undoing the steps before it (threads joined, lock released), so
a failed open leaves nothing running and no file changed (damage aside).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from gateway.store import epoch as epochs
from gateway.store.catalog import Catalog, Replication, load_catalog
from gateway.store.checkpointer import Checkpointer, without_autocheckpoint
from gateway.store.datadir import claim
from gateway.store.diskfull import CHECK_INTERVAL_S, DiskGuard
from gateway.store.epoch import FingerprintFn
from gateway.store.hlc import HybridClock, ntp_synchronised
from gateway.store.layout import (
    BUSY_TIMEOUT_MS,
    DB_FILENAME,
    ConnectFn,
    connect,
    open_checked,
    refusal,
    store_unavailable,
)
from gateway.store.lock import StoreLock
from gateway.store.quota import OutboxQuota
from gateway.store.readers import ReaderPool
from gateway.store.reserve import Reserve
from gateway.store.transaction import Transaction
from gateway.store.writelog import WriteLog
from gateway.store.writer import CommitFn, Committed, FinishHook, Writer, _default_commit

T = TypeVar("T")

log = logging.getLogger("gateway.store")


class Store:
    """Owns the database file and every thread and connection on it."""

    def __init__(
        self,
        path: Path,
        writer: Writer,
        readers: ReaderPool,
        gateway_id: str,
        checkpointer: Checkpointer,
        lock: StoreLock | None = None,
        epoch: int = 1,
        disk: DiskGuard | None = None,
    ) -> None:
        self.path = path
        self.checkpointer = checkpointer
        self.writer = writer
        self.readers = readers
        self.gateway_id = gateway_id
        # Which life of this store the outbox's seqs belong to (``gateway.store.epoch``).
        self.epoch = epoch
        self.write_log = WriteLog()
        # The disk-full state (``diskfull.py``): refuses writes, watches for space.
        self.disk = disk or DiskGuard(path.parent, Reserve(path.parent, 0))
        self._lock = lock
        self._closed = False

    @classmethod
    async def open(
        cls,
        data_dir: Path,
        *,
        commit_interval_ms: float = 0.0,
        max_batch_jobs: int = 256,
        reader_threads: int = 2,
        replication: dict[str, Replication] | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
        synced: Callable[[], bool] = ntp_synchronised,
        commit_fn: CommitFn = _default_commit,
        connect: ConnectFn = connect,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        fingerprint: FingerprintFn = epochs.fingerprint,
        outbox_max_bytes: int = 0,
        outbox_overflow: str = "block",
        reserve_bytes: int = 0,
        disk_check_interval_s: float = CHECK_INTERVAL_S,
    ) -> Store:
        """Open (creating if needed) the store in ``data_dir``; threads started.

        Raises ``StoreUnavailableError`` (another process has it, locked, read-only...:
        nothing changed) or ``DamagedStoreError`` (moved aside); ``connect`` opens
        every connection (a seam for tests). ``outbox_max_bytes`` (0 = no limit) and
        ``outbox_overflow`` bound the replication outbox (``quota.py``);
        ``reserve_bytes`` (0 = none) is held in ``<data_dir>/reserve`` for a full disk,
        whose state is looked at every ``disk_check_interval_s`` (``diskfull.py``)."""
        quota = OutboxQuota(outbox_max_bytes, outbox_overflow)
        data_dir = Path(data_dir)
        path = data_dir / DB_FILENAME
        lock = await _claim(data_dir)
        disk = DiskGuard(
            data_dir, Reserve(data_dir, reserve_bytes), check_interval_s=disk_check_interval_s
        )
        try:
            await asyncio.to_thread(disk.make_room_to_open)
            found = await asyncio.to_thread(fingerprint, data_dir)
            gateway_id, last_ts, catalog, epoch = await asyncio.to_thread(
                _prepare, path, replication or {}, connect, busy_timeout_ms, found
            )
            opener = functools.partial(connect, path, busy_timeout_ms=busy_timeout_ms)
            writer = Writer(
                lambda: without_autocheckpoint(opener(readonly=False)),
                catalog,
                HybridClock(last_ts, wall_ns=wall_ns, synced=synced),
                commit_interval_ms=commit_interval_ms,
                max_batch_jobs=max_batch_jobs,
                commit_fn=commit_fn,
                quota=quota,
                guard=disk,
            )
            readers = ReaderPool(
                functools.partial(opener, readonly=True),
                lambda: writer.catalog,
                size=reader_threads,
            )
            checkpointer = Checkpointer(functools.partial(opener, readonly=False))
            store = cls(path, writer, readers, gateway_id, checkpointer, lock, epoch, disk)
            disk.on_full = checkpointer.committed
            writer._on_commit = store._published  # noqa: SLF001 - wiring, set once
            await disk.start()  # before the threads: nothing to undo if it is cancelled
            await store._start_threads()
        except BaseException:
            lock.release()
            raise
        return store

    async def _start_threads(self) -> None:
        """Start the writer, the readers, then the checkpointer; on failure stop (join)
        what started."""
        try:
            await self.writer.start()
            await self.readers.start()
            self.checkpointer.start()
        except BaseException as exc:
            await self.checkpointer.close()
            await self.readers.close()
            await self.writer.close()
            if isinstance(exc, sqlite3.Error):
                raise store_unavailable(self.path, exc) from exc
            raise

    @property
    def catalog(self) -> Catalog:
        """The newest committed catalog."""
        return self.writer.catalog

    @property
    def clock(self) -> HybridClock:
        return self.writer.clock

    async def write(
        self, work: Callable[[Transaction], T], *, origin: str = "local", durable: bool = True
    ) -> tuple[T, int]:
        """Run ``work`` on the writer; returns (result, commit ts) after COMMIT (not
        fsynced of its own when ``durable=False``: ``writer.py``)."""
        return await self.writer.submit(work, origin=origin, durable=durable)

    def add_finish_hook(self, hook: FinishHook) -> None:
        """Run ``hook(tx, changes)`` at the end of every write job, inside it (its writes
        commit with the job's): how the hub logs changes for the downlink."""
        self.writer.finish_hooks.append(hook)

    async def read(self, work: Callable[[Transaction], T]) -> tuple[T, int]:
        """Run ``work`` on a reader snapshot; returns (result, snapshot ts)."""
        return await self.readers.submit(work)

    async def bump_epoch(self, reason: str) -> int:
        """A new replication epoch, durable before it is returned (an import: the
        store's seqs start a new life upstream; ``gateway.store.epoch``)."""
        epoch, _ = await self.write(lambda tx: epochs.bump(tx.conn))
        self.epoch = epoch
        log.info("replication epoch is now %d (%s)", epoch, reason)
        return epoch

    async def close(self) -> None:
        """Finish queued reads, drain and commit queued writes, stop every thread.

        Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await self.disk.close()
        # Readers and checkpointer first: the writer's connection, closing last,
        # checkpoints the WAL into the main file and removes it.
        await self.checkpointer.close()
        await self.readers.close()
        await self.writer.close()
        if self._lock is not None:  # last: no thread of ours touches the file any more
            self._lock.release()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _published(self, commits: list[Committed], catalog: Catalog) -> None:
        self.checkpointer.committed()
        self.write_log.append(commits)


async def _claim(data_dir: Path) -> StoreLock:
    """``claim`` off the loop. If the open is cancelled meanwhile, the lock the thread
    still takes is released when it arrives: kept, it would refuse this process's next
    open with its own PID."""
    claiming = asyncio.ensure_future(asyncio.to_thread(claim, data_dir))
    try:
        return await asyncio.shield(claiming)
    except asyncio.CancelledError:
        claiming.add_done_callback(_release_claimed)
        raise


def _release_claimed(claiming: asyncio.Future[StoreLock]) -> None:
    if not claiming.cancelled() and claiming.exception() is None:
        claiming.result().release()


def _prepare(
    path: Path,
    replication: dict[str, Replication],
    connect: ConnectFn,
    busy_timeout_ms: int,
    found: epochs.Fingerprint,
) -> tuple[str, int, Catalog, int]:
    conn = open_checked(path, connect=connect, busy_timeout_ms=busy_timeout_ms)
    try:
        try:
            gateway_id, last_ts, epoch = _init_meta(conn, found)
            catalog = load_catalog(conn, replication)
        finally:
            conn.close()
    except sqlite3.Error as exc:  # past quick_check: still only damage is moved aside
        raise refusal(path, exc) from exc
    return gateway_id, last_ts, catalog, epoch


def _init_meta(conn: sqlite3.Connection, found: epochs.Fingerprint) -> tuple[str, int, int]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('gateway_id', ?)", (uuid.uuid4().hex,)
        )
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('last_ts', '0')")
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('catalog_version', '0')")
        epoch = epochs.settle(conn, found)
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    return _meta(conn, "gateway_id"), int(_meta(conn, "last_ts")), epoch


def _meta(conn: sqlite3.Connection, key: str) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return str(row[0])
