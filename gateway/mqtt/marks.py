"""Per-device dedupe marks: which (boot, seq) of a device are already in the store.

DESIGN decision 7. A device numbers its readings ``seq`` = 1, 2, 3... within a
``boot`` (an epoch it changes when it loses its counter). For each (device, boot) the
store keeps ``acked``, the contiguous high-water mark (every seq <= acked is applied or
dead-lettered), and ``above``, a bitmask of the seqs ``acked + 1 .. acked + WINDOW``
already applied: the reorder window. The row is read and written inside the writer job
of the message it judges, so a mark and the message's effects commit together.

A seq beyond the window moves the window up: the gap left below it is given up (logged,
and counted in ``gave_up``) rather than making the ack wait forever for a reading the
device will never send (it dropped it, or numbers with gaps). The ack a device sees is
``acked``; so a device that starts a boot at seq 1 and sends every number never has a
reading covered before it is durable.

This is a plain SQLite table, not a document table: one small row rewritten per message
(in the page cache; written once per batch), where a document would rewrite its body
and three index entries.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from typing import Final

log = logging.getLogger("gateway.mqtt")

WINDOW: Final = 62  # seqs tracked above ``acked``; fits a signed 64-bit SQLite INTEGER
BOOTS_KEPT: Final = 8  # per device: older boots' marks are pruned (their redeliveries
# would be applied again, which takes a device rebooting 8 times with readings in flight)

CREATE_SQL: Final = """
CREATE TABLE IF NOT EXISTS mqtt_marks (
    device TEXT NOT NULL,
    boot INTEGER NOT NULL,
    acked INTEGER NOT NULL,
    above INTEGER NOT NULL,
    updated_ms REAL NOT NULL,
    PRIMARY KEY (device, boot)
) WITHOUT ROWID
"""


@dataclass
class Mark:
    """The dedupe state of one (device, boot)."""

    device: str
    boot: int
    acked: int = 0
    above: int = 0
    gave_up: int = 0  # seqs skipped by the last ``add`` (for the log)
    new: bool = True  # not in the table yet

    def seen(self, seq: int) -> bool:
        """True if ``seq`` was applied (or given up) already."""
        if seq <= self.acked:
            return True
        offset = seq - self.acked - 1
        return offset < WINDOW and bool(self.above >> offset & 1)

    def add(self, seq: int) -> None:
        """Record ``seq`` as applied (call only when not ``seen``)."""
        self.gave_up = 0
        offset = seq - self.acked - 1
        if offset >= WINDOW:  # move the window so that seq is its top
            shift = offset - WINDOW + 1
            self.gave_up = sum(1 for i in range(min(shift, WINDOW)) if not self.above >> i & 1)
            self.gave_up += max(0, shift - WINDOW)
            self.above >>= shift
            self.acked += shift
            offset = WINDOW - 1
        self.above |= 1 << offset
        while self.above & 1:  # the contiguous run grows
            self.above >>= 1
            self.acked += 1


def ensure_table(conn: sqlite3.Connection) -> None:
    conn.execute(CREATE_SQL)


def load(conn: sqlite3.Connection, device: str, boot: int) -> Mark:
    row = conn.execute(
        "SELECT acked, above FROM mqtt_marks WHERE device = ? AND boot = ?", (device, boot)
    ).fetchone()
    if row is None:
        return Mark(device, boot)
    return Mark(device, boot, row[0], row[1], new=False)


def save(conn: sqlite3.Connection, mark: Mark, now_ms: float) -> None:
    conn.execute(
        "INSERT INTO mqtt_marks (device, boot, acked, above, updated_ms) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (device, boot) DO UPDATE SET acked = excluded.acked, "
        "above = excluded.above, updated_ms = excluded.updated_ms",
        (mark.device, mark.boot, mark.acked, mark.above, now_ms),
    )
    if mark.new:
        _prune_boots(conn, mark.device)
        mark.new = False
    if mark.gave_up:
        log.warning(
            "device %s boot %d: %d readings below seq %d never arrived within the reorder "
            "window of %d; they are given up and the ack moves past them",
            mark.device,
            mark.boot,
            mark.gave_up,
            mark.acked,
            WINDOW,
        )


def _prune_boots(conn: sqlite3.Connection, device: str) -> None:
    conn.execute(
        "DELETE FROM mqtt_marks WHERE device = ? AND boot NOT IN (SELECT boot FROM mqtt_marks "
        "WHERE device = ? ORDER BY updated_ms DESC LIMIT ?)",
        (device, device, BOOTS_KEPT),
    )
