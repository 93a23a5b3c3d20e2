"""The SQLite layout Outpost keeps, and opening a file safely.

Documents hold the current version only: snapshots come from SQLite's WAL read
transactions, and one serial writer means there is nothing to reconcile (no MVCC
history to garbage-collect on an SD card). Every index, the built-in
``by_creation_time`` included, is a table of order-preserving byte keys, so a range
scan is ``key >= ? AND key < ?`` in Convex order.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from gateway.errors import DamagedStoreError, LayoutTooNewError

log = logging.getLogger("gateway.store")

LAYOUT_VERSION = 1
DB_FILENAME = "outpost.sqlite3"

_DDL = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tables (
    number INTEGER PRIMARY KEY,
    name   TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS index_defs (
    index_id INTEGER PRIMARY KEY,
    tbl      INTEGER NOT NULL,
    name     TEXT NOT NULL,
    fields   TEXT NOT NULL,
    UNIQUE (tbl, name)
);
CREATE TABLE IF NOT EXISTS documents (
    id   TEXT PRIMARY KEY,
    tbl  INTEGER NOT NULL,
    ts   INTEGER NOT NULL,
    body TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS indexes (
    index_id INTEGER NOT NULL,
    key      BLOB NOT NULL,
    doc_id   TEXT NOT NULL,
    PRIMARY KEY (index_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS change_log (
    seq    INTEGER PRIMARY KEY,
    ts     INTEGER NOT NULL,
    op     TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    tbl    TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    after  TEXT,
    origin TEXT NOT NULL
);
"""


def configure(conn: sqlite3.Connection, *, readonly: bool = False) -> None:
    """Pragmas every connection of the store uses.

    ``synchronous=FULL`` in WAL mode fsyncs the WAL at every COMMIT: a caller is
    answered only after its batch is durable, and that is the promise. NORMAL would
    only sync at checkpoints and could lose acknowledged batches on power loss.
    """
    conn.execute("PRAGMA busy_timeout = 5000")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
        return
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode: transactions are always explicit."""
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    configure(conn, readonly=readonly)
    return conn


def open_checked(path: Path) -> sqlite3.Connection:
    """Open (or create) the store file: integrity-checked, layout current.

    A file that fails ``PRAGMA quick_check`` is moved aside with its WAL, never
    deleted, and ``DamagedStoreError`` says where it went.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn: sqlite3.Connection | None = None
    try:
        conn = connect(path)
        row = conn.execute("PRAGMA quick_check").fetchone()
        detail = str(row[0]) if row else "no answer"
    except sqlite3.DatabaseError as exc:
        detail = str(exc)
    if conn is None or detail != "ok":
        if conn is not None:
            conn.close()
        raise DamagedStoreError(_move_aside(path, detail))
    try:
        _ensure_layout(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _ensure_layout(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _DDL.split(";"):
            if statement.strip():
                conn.execute(statement)
        row = conn.execute("SELECT value FROM meta WHERE key = 'layout_version'").fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('layout_version', ?)", (LAYOUT_VERSION,)
            )
        elif int(row[0]) > LAYOUT_VERSION:
            raise LayoutTooNewError(
                f"{path} was written by a newer Outpost (store layout {row[0]}, this version "
                f"understands up to {LAYOUT_VERSION}); upgrade Outpost, or point --data-dir "
                "at another directory"
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _move_aside(path: Path, detail: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            os.replace(side, Path(str(target) + suffix))
    log.error("store file %s failed its integrity check; moved to %s", path, target)
    return (
        f"the store file {path} failed its integrity check ({detail[:200]}) and was moved to "
        f"{target}; Outpost will start with an empty store at {path}. To recover rows from the "
        f"damaged copy run: sqlite3 {target} .recover | sqlite3 {path}.recovered — or import "
        "your last export with `outpost import FILE.zip`"
    )
