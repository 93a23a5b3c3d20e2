"""The cron runner's two system tables.

``_cron_jobs`` keeps one document per registered job (its schedule, function, args and
next/previous occurrence) so a restart knows what it missed; ``_cron_job_logs`` keeps
one document per run or skip, shaped like ``_scheduled_functions`` (``name`` is the
function path, ``args`` a one-element list, ``scheduledTime``, ``completedTime``,
``state.kind`` success / failed / canceled) plus ``cronName``. The log is bounded: an
edge box must not grow a table forever (``MAX_LOG_DOCS``, oldest removed first).
"""

from __future__ import annotations

from typing import Any

from gateway.store import BY_CREATION_TIME, Transaction

JOBS_TABLE = "_cron_jobs"
LOGS_TABLE = "_cron_job_logs"
MAX_LOG_DOCS = 1000


def ensure_cron_tables(tx: Transaction) -> None:
    """Create both tables if this store has none yet."""
    for table in (JOBS_TABLE, LOGS_TABLE):
        if tx.catalog.table(table) is None:
            tx.create_table(table)


def _docs(tx: Transaction, table: str) -> list[dict[str, Any]]:
    info = tx.catalog.table(table)
    if info is None:
        return []
    return [doc for _k, _s, doc in tx.scan(info.indexes[BY_CREATION_TIME], b"", None)]


def load_states(tx: Transaction) -> dict[str, dict[str, Any]]:
    """The stored state of every job, by job name."""
    return {doc["name"]: doc for doc in _docs(tx, JOBS_TABLE)}


def save_states(tx: Transaction, states: dict[str, dict[str, Any]]) -> None:
    """Make ``_cron_jobs`` hold exactly ``states`` (name -> body), touching only changes."""
    stored = load_states(tx)
    now_ms = tx.ts / 1_000_000
    for name, doc in stored.items():
        if name not in states:
            tx.delete(JOBS_TABLE, doc)
    for name, body in states.items():
        old = stored.get(name)
        if old is None:
            tx.insert(JOBS_TABLE, body, now_ms)
        elif {k: v for k, v in old.items() if not k.startswith("_")} != body:
            tx.replace(JOBS_TABLE, old, body)


def insert_log(tx: Transaction, body: dict[str, Any]) -> None:
    """Record one run or skip; the oldest records go once there are ``MAX_LOG_DOCS``."""
    now_ms = tx.ts / 1_000_000
    tx.insert(LOGS_TABLE, {**body, "completedTime": now_ms}, now_ms)
    info = tx.catalog.table(LOGS_TABLE)
    assert info is not None
    count = tx.conn.execute(
        "SELECT COUNT(*) FROM documents WHERE tbl = ?", (info.number,)
    ).fetchone()[0]
    if count <= MAX_LOG_DOCS:
        return
    oldest = tx.scan(info.indexes[BY_CREATION_TIME], b"", None)
    for _ in range(count - MAX_LOG_DOCS):
        _key, _size, doc = next(oldest)
        tx.delete(LOGS_TABLE, doc)


def read_logs(tx: Transaction) -> list[dict[str, Any]]:
    """Every log record, oldest first (for tools and tests)."""
    return _docs(tx, LOGS_TABLE)
