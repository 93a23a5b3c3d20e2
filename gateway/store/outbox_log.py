"""The replication outbox on disk: ``change_log`` and its sealed segments.

Entries are appended to ``change_log`` (the head; ``AUTOINCREMENT`` numbers them, so a
seq is never handed out twice). Pruning what the upstream acknowledged one row at a
time rewrites every page those rows sat on: about 200 KB of WAL (and as much again at
the checkpoint) per thousand entries, committed on the writer between local writes, on
an SD card. So the outbox is kept in segments that go whole:

- **Sealing.** When a batch leaves the head spanning ``SEGMENT_ROWS`` seqs or more, the
  head is renamed ``change_log_<first seq>`` (sealed: never written again but by the
  quota's ``drop_oldest``) and a new, empty head takes up the sequence where it was.
- **Pruning.** An acknowledgement moves the cursor (``meta`` ``outbox_acked``) and drops
  every sealed segment it covers whole, and empties the head once the head is covered
  whole: with ``secure_delete = FAST`` (``layout.configure``) a dropped table costs a few
  freelist pages, not a rewrite of each one. Acknowledged entries of a segment the
  cursor is inside wait for the rest of it; nothing reads them (every read here is
  "after the cursor"), and the quota stops counting them at once.

Segments hold contiguous seq ranges, in order: sealed ones by name, then the head.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any, Final

HEAD: Final = "change_log"
CURSOR_KEY: Final = "outbox_acked"
# A segment dropped whole takes ~2 ms on the writer at this size (16,384 small entries);
# a few hundred of them hold a backlog of millions without a schema SQLite is slow to read.
SEGMENT_ROWS: Final = 16_384
# A row's bookkeeping beyond its text (seq, ts, op, origin, flags, b-tree overhead): a
# rough constant keeps the count cheap and the same in Python and in SQL.
ROW_OVERHEAD_BYTES: Final = 48
ROW_BYTES_SQL: Final = (
    f"coalesce(length(after), 0) + length(tbl) + length(doc_id) + {ROW_OVERHEAD_BYTES}"
)
COLUMNS: Final = "seq, ts, op, tbl, doc_id, after, trusted"
HEAD_DDL: Final = f"""
CREATE TABLE IF NOT EXISTS {HEAD} (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    ts     INTEGER NOT NULL,
    op     TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    tbl    TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    after  TEXT,
    origin TEXT NOT NULL,
    trusted INTEGER NOT NULL DEFAULT 1
)"""
_SEALED_GLOB: Final = f"{HEAD}_[0-9]*"
_SEQ_DIGITS: Final = 20  # names sort as their first seqs do


def segments(conn: sqlite3.Connection) -> list[str]:
    """Every segment's table, oldest entries first (the head last)."""
    sealed = conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB ? ORDER BY name",
        (_SEALED_GLOB,),
    ).fetchall()
    return [name for (name,) in sealed] + [HEAD]


def read_cursor(conn: sqlite3.Connection) -> int:
    """The highest seq the upstream has acknowledged (0 before the first)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (CURSOR_KEY,)).fetchone()
    return 0 if row is None else int(row[0])


def rows_after(
    conn: sqlite3.Connection, after: int, limit: int, columns: str = COLUMNS
) -> list[tuple[Any, ...]]:
    """Up to ``limit`` entries with seq > ``after``, in seq order: ``columns`` of each
    (SQL over a segment's columns; ``COLUMNS`` by default)."""
    rows: list[tuple[Any, ...]] = []
    for table in segments(conn):
        rows += conn.execute(
            f"SELECT {columns} FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit - len(rows)),
        ).fetchall()
        if len(rows) >= limit:
            break
    return rows


def newest_seq(conn: sqlite3.Connection) -> int:
    """The highest seq in the outbox (0 when every entry is pruned)."""
    for table in reversed(segments(conn)):
        (newest,) = conn.execute(f"SELECT max(seq) FROM {table}").fetchone()
        if newest is not None:
            return int(newest)
    return 0


def union_after(columns: str, tables: list[str]) -> str:
    """SQL for ``columns`` of every entry after the seq bound to ``?1``, in any order."""
    return " UNION ALL ".join(f"SELECT {columns} FROM {t} WHERE seq > ?1" for t in tables)


def acknowledge(conn: sqlite3.Connection, applied: int) -> int | None:
    """Move the cursor to ``applied`` and prune what that covers whole; the bytes the
    quota counted for the newly acknowledged entries, or None when the cursor is
    already there or past it (an older answer arriving late never moves it back)."""
    acked = read_cursor(conn)
    if applied <= acked:
        return None
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (CURSOR_KEY, str(applied))
    )
    freed = 0
    for table, first, last in _spans(conn):
        if first is None or last is None:  # emptied by ``drop_oldest``
            if table != HEAD:
                conn.execute(f"DROP TABLE {table}")
            continue
        if last <= acked or first > applied:
            continue
        (size,) = conn.execute(
            f"SELECT coalesce(sum({ROW_BYTES_SQL}), 0) FROM {table} WHERE seq > ? AND seq <= ?",
            (acked, applied),
        ).fetchone()
        freed += int(size)
        if last <= applied:  # covered whole: dropped, or the head emptied (a truncation)
            conn.execute(f"DELETE FROM {HEAD}" if table == HEAD else f"DROP TABLE {table}")
    return freed


def seal_if_full(conn: sqlite3.Connection) -> bool:
    """Seal the head when it spans ``SEGMENT_ROWS`` seqs or more (in the writer's
    transaction, before COMMIT); whether it was sealed."""
    first, last = _ends(conn, HEAD)
    if first is None or last is None or last - first + 1 < SEGMENT_ROWS:
        return False
    (sequence,) = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (HEAD,)).fetchone()
    conn.execute(f"ALTER TABLE {HEAD} RENAME TO {HEAD}_{int(first):0{_SEQ_DIGITS}d}")
    conn.execute(HEAD_DDL)
    # The rename took the sequence along: the new head starts where the old one stopped.
    conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (HEAD, sequence))
    return True


def drop_oldest(conn: sqlite3.Connection, need: int, chunk: int = 256) -> tuple[int, int]:
    """Delete the oldest unacknowledged entries until ``need`` counted bytes are freed
    (or none is left); (bytes freed, entries dropped)."""
    acked = read_cursor(conn)
    freed = count = 0
    for table in segments(conn):
        while freed < need:
            rows = conn.execute(
                f"SELECT seq, {ROW_BYTES_SQL} FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?",
                (acked, chunk),
            ).fetchall()
            if not rows:
                break
            last = rows[-1][0]
            for seq, size in rows:
                freed += int(size)
                count += 1
                if freed >= need:
                    last = seq
                    break
            conn.execute(f"DELETE FROM {table} WHERE seq > ? AND seq <= ?", (acked, last))
            acked = last
        if freed >= need:
            break
    return freed, count


def _spans(conn: sqlite3.Connection) -> Iterator[tuple[str, int | None, int | None]]:
    """(table, first seq, last seq) of each segment; (table, None, None) when empty."""
    for table in segments(conn):
        first, last = _ends(conn, table)
        yield table, first, last


def _ends(conn: sqlite3.Connection, table: str) -> tuple[int | None, int | None]:
    """A segment's first and last seq: two seeks (one query asking for both scans it)."""
    first, last = conn.execute(
        f"SELECT (SELECT min(seq) FROM {table}), (SELECT max(seq) FROM {table})"
    ).fetchone()
    return first, last
