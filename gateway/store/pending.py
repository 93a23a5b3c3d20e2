"""Rows of new documents held back until something reads, or the batch commits.

Group commit (DESIGN decision 1) shares one fsync among a batch of mutations; this
shares the statements too. A mutation that only inserts (a sensor reading, the
common case) would otherwise cost four SQLite calls: ``SAVEPOINT``, the document,
its index rows, ``RELEASE``. Here its rows wait in lists and the whole batch goes in
with one ``executemany`` per table just before ``COMMIT``. A new document's rows in
full-text search indexes (``search.py``) wait the same way.

Correctness rests on two rules:

- **Every read flushes first.** ``Transaction.conn`` is the only way to the
  connection, and it calls ``direct()``, so any SQL a job runs (a ``get``, a query,
  a helper module's own statement) sees every row written before it.
- **A job's rows leave with the job.** Rows a failing job added are dropped from the
  lists; rows it already flushed are undone by ``ROLLBACK TO job``. The job's
  savepoint is opened lazily, on its first ``direct()``, *before* that call writes
  anything, so rows of earlier jobs written then are inside it too: a rollback
  undoes them, and they go back into the lists (``_carried``) to be written later.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.store import search
from gateway.store.catalog import SearchIndexInfo

DOC_SQL = "INSERT INTO documents (id, tbl, ts, body) VALUES (?, ?, ?, ?)"
KEY_SQL = "INSERT INTO indexes (index_id, key, doc_id) VALUES (?, ?, ?)"
LOG_SQL = (
    "INSERT INTO change_log (ts, op, tbl, doc_id, after, origin, trusted) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)

Rows = list[tuple[Any, ...]]
Held = list[tuple[SearchIndexInfo, dict[str, Any]]]  # (search index, new document)
_Lists = tuple[Rows, Rows, Rows, Held]
Mark = tuple[int, int, int, int]


class PendingWrites:
    """One writer batch's unwritten rows, and the current job's savepoint."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.docs: Rows = []
        self.keys: Rows = []
        self.log: Rows = []
        self.search: Held = []
        self._job_start: Mark = (0, 0, 0, 0)
        self._in_savepoint = False
        self._carried: _Lists | None = None  # earlier jobs' rows written in this job's savepoint

    def __len__(self) -> int:
        return len(self.docs) + len(self.keys) + len(self.log) + len(self.search)

    # --- a job --------------------------------------------------------------------------

    def begin_job(self) -> None:
        self._job_start = self.mark()
        self._in_savepoint = False
        self._carried = None

    def direct(self) -> sqlite3.Connection:
        """The connection, with every held row written and the job's savepoint open."""
        conn = self._conn
        if not self._in_savepoint:
            conn.execute("SAVEPOINT job")
            self._in_savepoint = True
            d, k, g, s = self._job_start
            self._carried = (self.docs[:d], self.keys[:k], self.log[:g], self.search[:s])
        if len(self):
            self._write()
            self._job_start = (0, 0, 0, 0)
        return conn

    def end_job(self, ok: bool) -> None:
        """Keep the job's rows (``ok``) or drop every trace of them."""
        if ok:
            if self._in_savepoint:
                self._conn.execute("RELEASE job")
        else:
            if self._in_savepoint:
                self._conn.execute("ROLLBACK TO job")
                self._conn.execute("RELEASE job")
            if self._carried is not None:
                docs, keys, log, held = self._carried
                self.docs, self.keys, self.log, self.search = (
                    list(docs),
                    list(keys),
                    list(log),
                    list(held),
                )
            else:
                self.truncate(self._job_start)
        self._in_savepoint = False
        self._carried = None

    def mark(self) -> Mark:
        """Where the lists end now (a nested savepoint truncates back to it)."""
        return len(self.docs), len(self.keys), len(self.log), len(self.search)

    def truncate(self, mark: Mark) -> None:
        d, k, g, s = mark
        del self.docs[d:], self.keys[k:], self.log[g:], self.search[s:]

    # --- the batch ----------------------------------------------------------------------

    def flush(self) -> None:
        """Write every held row (between jobs: before COMMIT)."""
        if len(self):
            self._write()

    def _write(self) -> None:
        conn = self._conn
        if self.docs:
            conn.executemany(DOC_SQL, self.docs)
        if self.keys:
            conn.executemany(KEY_SQL, self.keys)
        if self.log:
            conn.executemany(LOG_SQL, self.log)
        if self.search:  # after the documents: the rows point at them
            search.add_held(conn, self.search)
        self.docs, self.keys, self.log, self.search = [], [], [], []
