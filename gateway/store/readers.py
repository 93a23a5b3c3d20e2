"""Read-only connections, each on its own thread, serving snapshot reads.

A read job runs inside one SQLite read transaction: every row it sees is from one
snapshot, and it learns that snapshot's timestamp from the ``last_ts`` meta row that
every batch writes. The event loop never touches SQLite.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from gateway.errors import StoreClosedError
from gateway.store.catalog import Catalog, load_catalog
from gateway.store.transaction import Transaction
from gateway.store.writer import ready_slot

T = TypeVar("T")

_STOP = object()


@dataclass
class _ReadJob(Generic[T]):
    work: Callable[[Transaction], T]
    future: asyncio.Future[tuple[T, int]]


class ReaderPool:
    """``size`` reader threads sharing one queue of read jobs."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        catalog: Callable[[], Catalog],
        *,
        size: int = 2,
    ) -> None:
        self._connect = connect
        self._catalog = catalog
        self._size = size
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.thread_ids: set[int] = set()
        self.connections: dict[int, sqlite3.Connection] = {}
        self.handoffs = 0

    async def start(self) -> None:
        """Start every thread; returns once all connections are open, or raises the
        first failure (``close()`` then joins the threads that did start)."""
        self._loop = asyncio.get_running_loop()
        readies = []
        for n in range(self._size):
            ready = ready_slot()
            thread = threading.Thread(
                target=self._main, args=(ready,), name=f"outpost-reader-{n}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
            readies.append(ready)
        for ready in readies:  # in turn: a failure leaves no unawaited future behind
            await asyncio.wrap_future(ready)

    async def submit(self, work: Callable[[Transaction], T]) -> tuple[T, int]:
        """Run ``work`` on a snapshot; returns (result, snapshot ts)."""
        if self._closed:
            raise StoreClosedError("the store is closed; no more reads are accepted")
        assert self._loop is not None
        future: asyncio.Future[tuple[T, int]] = self._loop.create_future()
        self.handoffs += 1
        self._queue.put(_ReadJob(work, future))
        return await future

    @property
    def queued(self) -> int:
        """Read jobs submitted and not yet taken by a reader thread (approximate)."""
        return self._queue.qsize()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            await asyncio.to_thread(thread.join)

    def _main(self, ready: concurrent.futures.Future[None]) -> None:
        ident = threading.get_ident()
        try:
            conn = self._connect()
        except BaseException as exc:  # noqa: BLE001 - reported to start(), which raises it
            ready.set_exception(exc)
            return
        self.thread_ids.add(ident)
        self.connections[ident] = conn
        ready.set_result(None)
        try:
            while True:
                job = self._queue.get()
                if job is _STOP:
                    return
                self._run(conn, job)
        finally:
            conn.close()

    def _run(self, conn: sqlite3.Connection, job: _ReadJob[Any]) -> None:
        try:
            conn.execute("BEGIN")
            try:
                ts = int(conn.execute("SELECT value FROM meta WHERE key = 'last_ts'").fetchone()[0])
                catalog = self._catalog_at(conn)
                result = job.work(Transaction(conn, catalog, ts, writable=False))
            finally:
                conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - delivered to the caller
            self._deliver(job, error=exc)
        else:
            self._deliver(job, result=(result, ts))

    def _catalog_at(self, conn: sqlite3.Connection) -> Catalog:
        catalog = self._catalog()
        version = conn.execute("SELECT value FROM meta WHERE key = 'catalog_version'").fetchone()
        if version is not None and int(version[0]) != catalog.version:
            # The published catalog lags this snapshot (a table was just created): read
            # the catalog this snapshot sees, so table and index ids agree with the rows.
            return load_catalog(conn, catalog.replication, version=int(version[0]))
        return catalog

    def _deliver(
        self, job: _ReadJob[Any], *, result: Any = None, error: BaseException | None = None
    ) -> None:
        assert self._loop is not None

        def resolve() -> None:
            if job.future.done():
                return
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(result)

        try:
            self._loop.call_soon_threadsafe(resolve)
        except RuntimeError:
            pass
