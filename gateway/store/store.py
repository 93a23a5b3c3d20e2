"""The store: one SQLite file, one writer thread, a few reader threads."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from gateway.store.catalog import Catalog, Replication, load_catalog
from gateway.store.hlc import HybridClock, ntp_synchronised
from gateway.store.layout import DB_FILENAME, open_checked
from gateway.store.readers import ReaderPool
from gateway.store.transaction import Transaction
from gateway.store.writelog import WriteLog
from gateway.store.writer import CommitFn, Committed, Writer, _default_commit

T = TypeVar("T")


class Store:
    """Owns the database file and every thread and connection on it."""

    def __init__(self, path: Path, writer: Writer, readers: ReaderPool, gateway_id: str) -> None:
        self.path = path
        self.writer = writer
        self.readers = readers
        self.gateway_id = gateway_id
        self.write_log = WriteLog()
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
    ) -> Store:
        """Open (creating if needed) the store in ``data_dir``; threads started."""
        path = Path(data_dir) / DB_FILENAME
        gateway_id, last_ts, catalog = await asyncio.to_thread(_prepare, path, replication or {})
        clock = HybridClock(last_ts, wall_ns=wall_ns, synced=synced)
        writer = Writer(
            path,
            catalog,
            clock,
            commit_interval_ms=commit_interval_ms,
            max_batch_jobs=max_batch_jobs,
            commit_fn=commit_fn,
        )
        readers = ReaderPool(path, lambda: writer.catalog, size=reader_threads)
        store = cls(path, writer, readers, gateway_id)
        writer._on_commit = store._published  # noqa: SLF001 - wiring, set once
        loop = asyncio.get_running_loop()
        writer.start(loop)
        readers.start(loop)
        return store

    @property
    def catalog(self) -> Catalog:
        """The newest committed catalog."""
        return self.writer.catalog

    @property
    def clock(self) -> HybridClock:
        return self.writer.clock

    async def write(
        self, work: Callable[[Transaction], T], *, origin: str = "local"
    ) -> tuple[T, int]:
        """Run ``work`` on the writer; returns (result, commit ts) after COMMIT."""
        return await self.writer.submit(work, origin=origin)

    async def read(self, work: Callable[[Transaction], T]) -> tuple[T, int]:
        """Run ``work`` on a reader snapshot; returns (result, snapshot ts)."""
        return await self.readers.submit(work)

    async def close(self) -> None:
        """Finish queued reads, drain and commit queued writes, stop every thread.

        Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        # Readers first: the writer's connection, closing last, checkpoints the WAL
        # into the main file and removes it (a read-only connection cannot).
        await self.readers.close()
        await self.writer.close()

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
        self.write_log.append(commits)


def _prepare(path: Path, replication: dict[str, Replication]) -> tuple[str, int, Catalog]:
    conn = open_checked(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('gateway_id', ?)", (uuid.uuid4().hex,)
        )
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('last_ts', '0')")
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('catalog_version', '0')")
        conn.execute("COMMIT")
        gateway_id = _meta(conn, "gateway_id")
        last_ts = int(_meta(conn, "last_ts"))
        catalog = load_catalog(conn, replication)
    finally:
        conn.close()
    return gateway_id, last_ts, catalog


def _meta(conn: sqlite3.Connection, key: str) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return str(row[0])
