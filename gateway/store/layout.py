"""The SQLite layout Outpost keeps, and opening a file safely.

Documents hold the current version only: snapshots come from SQLite's WAL read
transactions, and one serial writer means there is nothing to reconcile (no MVCC
history to garbage-collect on an SD card). Every index, the built-in
``by_creation_time`` included, is a table of order-preserving byte keys, so a range
scan is ``key >= ? AND key < ?`` in Convex order. A full-text search index is an FTS5
table ``fts_<id>`` plus its row map ``fts_<id>_docs`` (``gateway/store/search.py``),
declared in ``search_defs``; that table is created if missing, so stores of layout 1
written before search existed open unchanged.

Layout 2: ``change_log`` (the replication outbox) numbers its entries with
``AUTOINCREMENT``. A plain ``INTEGER PRIMARY KEY`` hands out max(rowid) + 1, so once the
acknowledged entries are pruned the highest seq could be handed out again and the
upstream would take the new entry for one it has already applied. A layout-1 store is
migrated at open, in the same transaction as the layout check (``_migrate_1_to_2``).

Layout 3: each ``change_log`` row says whether the wall clock was trustworthy when it
was stamped (``trusted``; rows of older layouts count as trusted, which is what the
uplink assumed of them).

Layout 4: the outbox is kept in segments (``gateway/store/outbox_log.py``): a full
``change_log`` is sealed as ``change_log_<first seq>`` and a new one continues the
sequence. Nothing is migrated (a layout-3 ``change_log`` is a head like any other);
the version only keeps an older Outpost, which knows no sealed segment and would
never send one, from opening the store.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Protocol

from gateway.errors import DamagedStoreError, LayoutTooNewError, StoreUnavailableError
from gateway.store.outbox_log import HEAD_DDL

log = logging.getLogger("gateway.store")

LAYOUT_VERSION = 4
DB_FILENAME = "outpost.sqlite3"

# SQLite primary result codes (https://sqlite.org/rescode.html); extended codes carry
# the primary one in their low byte.
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 3, 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN = 10, 11, 13, 14
_SQLITE_AUTH, _SQLITE_NOTADB = 23, 26


_DDL = (
    """
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
CREATE TABLE IF NOT EXISTS search_defs (
    index_id      INTEGER PRIMARY KEY,
    tbl           INTEGER NOT NULL,
    name          TEXT NOT NULL,
    search_field  TEXT NOT NULL,
    filter_fields TEXT NOT NULL,
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
"""
    + HEAD_DDL
    + ";"
)


BUSY_TIMEOUT_MS = 5000


class ConnectFn(Protocol):
    """How the store opens a connection (a seam: tests pass one that fails)."""

    def __call__(
        self, path: Path, *, readonly: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS
    ) -> sqlite3.Connection: ...


def configure(
    conn: sqlite3.Connection, *, readonly: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> None:
    """Pragmas every connection of the store uses.

    ``synchronous=FULL`` in WAL mode fsyncs the WAL at every COMMIT: a caller is
    answered only after its batch is durable, and that is the promise. NORMAL would
    only sync at checkpoints and could lose acknowledged batches on power loss.
    """
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
        return
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    # Debian builds SQLite with secure_delete on: a dropped outbox segment would then be
    # written out page by page, zeroed. FAST still zeroes deleted content in the pages a
    # write touches anyway, and leaves freed pages as they were (no extra I/O).
    conn.execute("PRAGMA secure_delete = FAST")


def connect(
    path: Path, *, readonly: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> sqlite3.Connection:
    """A connection in autocommit mode: transactions are always explicit."""
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        configure(conn, readonly=readonly, busy_timeout_ms=busy_timeout_ms)
    except BaseException:
        conn.close()
        raise
    return conn


def open_checked(
    path: Path, *, connect: ConnectFn = connect, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> sqlite3.Connection:
    """Open the store file (``path`` exists): integrity-checked, layout current.

    Only damage moves the file aside (with its WAL, never deleted; the
    ``DamagedStoreError`` says where): ``SQLITE_CORRUPT``, ``SQLITE_NOTADB`` or a
    ``quick_check`` that is not "ok". Anything else (locked, busy, read-only, I/O,
    permission) raises ``StoreUnavailableError`` and leaves every file as it is: a
    healthy store moved aside would restart as an empty gateway that nobody notices.
    """
    conn: sqlite3.Connection | None = None
    try:
        conn = connect(path, busy_timeout_ms=busy_timeout_ms)
        detail = _quick_check(conn)
        if detail == "ok":
            _ensure_layout(conn, path)
            return conn
    except sqlite3.Error as exc:
        _close(conn)
        raise refusal(path, exc) from exc
    except BaseException:
        _close(conn)
        raise
    conn.close()
    raise DamagedStoreError(_move_aside(path, detail))


def refusal(path: Path, exc: sqlite3.Error) -> DamagedStoreError | StoreUnavailableError:
    """The error for a SQLite failure while opening; damage is moved aside first.

    Call it with every connection to ``path`` closed."""
    if is_corruption(exc):
        return DamagedStoreError(_move_aside(path, str(exc)))
    return store_unavailable(path, exc)


def is_corruption(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file itself is damaged (the only case to move it aside)."""
    return _primary_code(exc) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def store_unavailable(path: Path, exc: sqlite3.Error) -> StoreUnavailableError:
    """One line for a SQLite failure that is not damage: the cause and what to do."""
    code = _primary_code(exc)
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        text = (
            f"the store {path} is locked by another process ({exc}); stop that process "
            f"(`fuser -v {path}` names it) and start again"
        )
    elif code == _SQLITE_READONLY:
        text = (
            f"cannot write the store {path} ({exc}); check that its filesystem is mounted "
            "read-write and that this user may write the file"
        )
    elif code in (_SQLITE_PERM, _SQLITE_AUTH):
        text = f"no permission to open the store {path} ({exc}); run Outpost as its owner"
    elif code == _SQLITE_IOERR:
        text = f"I/O error on the store {path} ({exc}); check the storage device (dmesg)"
    elif code == _SQLITE_FULL:
        text = f"the disk holding the store {path} is full; free some space and start again"
    elif code == _SQLITE_CANTOPEN:
        text = (
            f"cannot open the store {path} ({exc}); check that this user may read and "
            "write it and its directory"
        )
    else:
        text = f"cannot open the store {path} ({exc})"
    return StoreUnavailableError(f"{text} (the store was left as it is)")


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def _quick_check(conn: sqlite3.Connection) -> str:
    row = conn.execute("PRAGMA quick_check").fetchone()
    return str(row[0]) if row else "no answer"


def _close(conn: sqlite3.Connection | None) -> None:
    if conn is not None:
        conn.close()


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
        elif int(row[0]) < LAYOUT_VERSION:
            _migrate(conn, int(row[0]))
        elif int(row[0]) > LAYOUT_VERSION:
            raise LayoutTooNewError(
                f"{path} was written by a newer Outpost (store layout {row[0]}, this version "
                f"understands up to {LAYOUT_VERSION}); upgrade Outpost, or point --data-dir "
                "at another directory"
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # BEGIN itself may be what failed (busy)
            conn.execute("ROLLBACK")
        raise


def _migrate(conn: sqlite3.Connection, found: int) -> None:
    """Bring an older layout up to ``LAYOUT_VERSION`` (inside the caller's transaction)."""
    if found < 2:
        _migrate_1_to_2(conn)
    if found < 3:
        conn.execute("ALTER TABLE change_log ADD COLUMN trusted INTEGER NOT NULL DEFAULT 1")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'layout_version'", (LAYOUT_VERSION,))
    log.info("store layout migrated from %d to %d", found, LAYOUT_VERSION)


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """``change_log`` rebuilt with AUTOINCREMENT (layout 2's table, as it was; layout 3
    adds a column after); its rows keep their seqs, and the sequence starts above the
    highest one (``sqlite_sequence`` follows the copy)."""
    conn.execute("ALTER TABLE change_log RENAME TO change_log_v1")
    conn.execute(
        "CREATE TABLE change_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL, "
        "op TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')), tbl TEXT NOT NULL, "
        "doc_id TEXT NOT NULL, after TEXT, origin TEXT NOT NULL)"
    )
    conn.execute("INSERT INTO change_log SELECT * FROM change_log_v1 ORDER BY seq")
    conn.execute("DROP TABLE change_log_v1")


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
