"""The outbox quota: how many bytes of unacknowledged ``change_log`` rows may wait.

A gateway offline for weeks must not fill its SD card with outbox entries. The total is
kept as a running count, never by scanning: the writer thread holds it in memory,
adds each job's new rows in ``Transaction.finish`` (where the check is made), subtracts
what the uplink prunes, and writes it to ``meta`` (``outbox_bytes``, beside
``outbox_dropped``) in the same COMMIT as the rows it counts. Only a store made before
the quota existed is scanned, once, at open.

Policies (``outbox_overflow``, names fixed): ``block`` refuses writes to ``up`` tables
once the count reaches ``outbox_max_bytes`` (checked at each write, so the mutation fails
alone; nothing accepted is lost; the count may pass the limit by one job's rows);
``drop_oldest`` deletes the oldest entries until the new ones fit and counts them. A
dropped entry leaves a hole in the seqs, which ``gateway.replication.outbox`` sends
upstream as ``skip`` entries, so the upstream's mark passes it and never waits on a gap.

The running count covers unacknowledged entries only: acknowledged ones leave it at
once, though their rows may wait for the rest of their segment (``outbox_log``).

The store imports no higher layer: the limit and policy arrive as plain values.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Final

from gateway.errors import LimitExceededError
from gateway.store import outbox_log
from gateway.store.outbox_log import ROW_BYTES_SQL, ROW_OVERHEAD_BYTES

__all__ = ["POLICIES", "ROW_BYTES_SQL", "OutboxFullError", "OutboxQuota", "row_bytes"]

log = logging.getLogger(__name__)

POLICIES: Final = ("block", "drop_oldest")
BYTES_KEY: Final = "outbox_bytes"
DROPPED_KEY: Final = "outbox_dropped"
# Rows deleted per statement while dropping: the oldest first, a few at a time.
_DROP_CHUNK: Final = 256


class OutboxFullError(LimitExceededError):
    """A write to a ``.replicate("up")`` table would pass ``outbox_max_bytes`` under
    ``outbox_overflow = "block"``."""


def row_bytes(row: Sequence[Any]) -> int:
    """The counted size of a ``change_log`` row as ``pending.LOG_SQL`` takes it."""
    _, _, table, doc_id, after, _, _ = row
    return (0 if after is None else len(after)) + len(table) + len(doc_id) + ROW_OVERHEAD_BYTES


class OutboxQuota:
    """The running total and the policy; used on the writer thread only."""

    def __init__(self, max_bytes: int = 0, policy: str = "block") -> None:
        if policy not in POLICIES:
            raise ValueError(
                f"outbox_overflow must be one of {', '.join(POLICIES)}, got {policy!r}"
            )
        if max_bytes < 0:
            raise ValueError(f"outbox_max_bytes must be 0 (no limit) or more, got {max_bytes}")
        self.max_bytes = max_bytes
        self.policy = policy
        self.used = 0
        self.dropped = 0
        self._loaded = False
        self._batch_start = (0, 0)
        self._job_start = (0, 0)
        self._appended = False  # entries were added in this batch

    # --- the writer's batch and jobs: a failed job or COMMIT leaves no trace ------------

    def begin_batch(self, conn: sqlite3.Connection) -> None:
        if not self._loaded:
            self.used, self.dropped = _load(conn)
            self._loaded = True
        self._batch_start = (self.used, self.dropped)
        self._appended = False

    def begin_job(self) -> None:
        self._job_start = (self.used, self.dropped)

    def end_job(self, ok: bool) -> None:
        if not ok:
            self.used, self.dropped = self._job_start

    def persist(self, conn: sqlite3.Connection) -> None:
        """Before COMMIT (held rows written): the totals go in with the rows they count,
        and a head this batch filled is sealed (``outbox_log``)."""
        if self._appended:
            outbox_log.seal_if_full(conn)
        if (self.used, self.dropped) != self._batch_start:
            conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                ((BYTES_KEY, str(self.used)), (DROPPED_KEY, str(self.dropped))),
            )

    def rolled_back(self) -> None:
        self.used, self.dropped = self._batch_start

    # --- the outbox ---------------------------------------------------------------------

    def check_room(self, table: str, origin: str) -> None:
        """Under ``block``, refuse a write to an ``up`` table once the outbox is full.

        Checked at each write, against what earlier jobs added: a job's own rows are
        counted at its end, so the outbox may pass the limit by one job's rows."""
        if (
            self.policy == "block"
            and self.max_bytes
            and self.used >= self.max_bytes
            and origin != "retention"
        ):
            raise OutboxFullError(
                f"the replication outbox is full (outbox_max_bytes = {self.max_bytes}, "
                f'outbox_overflow = "block"): this write to {table!r} is refused until the '
                "upstream acknowledges what is waiting"
            )

    def admit(self, conn: Callable[[], sqlite3.Connection], rows: Sequence[Sequence[Any]]) -> None:
        """Count ``rows`` in, under ``drop_oldest`` first dropping the oldest entries.

        ``conn`` is a callable giving the connection with held rows written (only
        called when entries must be dropped, so the common path writes nothing)."""
        size = sum(row_bytes(r) for r in rows)
        self._appended = True
        if self.max_bytes and self.policy == "drop_oldest" and self.used + size > self.max_bytes:
            self._drop(conn(), self.used + size - self.max_bytes)
        self.used += size

    def freed(self, size: int) -> None:
        """Entries acknowledged upstream and pruned."""
        self.used = max(0, self.used - size)

    def _drop(self, conn: sqlite3.Connection, need: int) -> None:
        freed, count = outbox_log.drop_oldest(conn, need, _DROP_CHUNK)
        self.used = max(0, self.used - freed)
        self.dropped += count
        log.warning(
            "replication outbox full (outbox_max_bytes = %d): dropped the %d oldest entries "
            "(%d dropped since the count began); the upstream gets them as skips",
            self.max_bytes,
            count,
            self.dropped,
        )


def _load(conn: sqlite3.Connection) -> tuple[int, int]:
    values = dict(
        conn.execute(
            "SELECT key, value FROM meta WHERE key IN (?, ?)", (BYTES_KEY, DROPPED_KEY)
        ).fetchall()
    )
    dropped = int(values.get(DROPPED_KEY, 0))
    if BYTES_KEY in values:
        return int(values[BYTES_KEY]), dropped
    # A store from before the quota: counted once (the cursor's rows are pruned already).
    (used,) = conn.execute(f"SELECT coalesce(sum({ROW_BYTES_SQL}), 0) FROM change_log").fetchone()
    return int(used), dropped
