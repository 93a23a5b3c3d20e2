"""The outbox's fast cut (change texts built by SQLite, taken whole) against the plain
cut (each row formatted in Python, ``outbox._cut``), on random outboxes: holes left by
``drop_oldest``, clock-trust flips, tables no longer replicated up, big documents,
deletes, unicode. Where the fast path answers, it must answer exactly what the plain
path does; where the plain path would stop early or skip, the fast path must decline."""

from __future__ import annotations

import json
import random
import sqlite3
import string
from typing import Any

import pytest

from gateway.replication import outbox as outbox_module
from gateway.replication.batch import MAX_BATCH_BYTES
from gateway.store import outbox_log

BASE32 = "0123456789abcdefghjkmnpqrstvwxyz"
UP = {"readings": "up", "events": "up", "config": "down", "scratch": "local"}


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(6 if depth < 2 else 4)
    if kind == 0:
        return rng.uniform(-1e9, 1e9)
    if kind == 1:
        return "".join(
            rng.choice(string.printable + "é✓雪\U0001f600") for _ in range(rng.randrange(12))
        )
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return rng.randrange(-(2**31), 2**31) * 1.0
    if kind == 4:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"f{i}": _value(rng, depth + 1) for i in range(rng.randrange(4))}


def _outbox(rng: random.Random) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute(outbox_log.HEAD_DDL)
    seq, trusted = rng.randrange(1, 10**6), 1
    flips = rng.random() < 0.3
    holes = rng.random() < 0.3
    others = rng.random() < 0.3
    for _ in range(rng.randrange(1, 120)):
        seq += 1 + (rng.randrange(3) if holes and rng.random() < 0.1 else 0)
        if flips and rng.random() < 0.05:
            trusted = 1 - trusted
        table = rng.choice(list(UP)) if others else rng.choice(["readings", "events"])
        op = rng.choice(["insert", "update", "delete"])
        doc = None if op == "delete" else {"_id": "x", "v": _value(rng)}
        if doc is not None and rng.random() < 0.05:
            doc["pad"] = "p" * rng.randrange(2_000, 9_000)
        conn.execute(
            "INSERT INTO change_log (seq, ts, op, tbl, doc_id, after, origin, trusted) "
            "VALUES (?, ?, ?, ?, ?, ?, 'local', ?)",
            (
                seq,
                rng.randrange(2**62),
                op,
                table,
                "".join(rng.choice(BASE32) for _ in range(31)),
                None if doc is None else json.dumps(doc, ensure_ascii=False),
                trusted,
            ),
        )
    return conn


@pytest.mark.parametrize("seed", range(300))
def test_the_fast_cut_is_the_plain_cut_or_declines(seed: int) -> None:
    rng = random.Random(seed)
    conn = _outbox(rng)
    caps = (rng.choice([1, 7, 50, 1000]), rng.choice([3_000, 20_000, 10**6]))
    seqs = [s for (s,) in conn.execute("SELECT seq FROM change_log ORDER BY seq")]
    after = rng.choice([0, seqs[0] - 1, *rng.sample(seqs, min(3, len(seqs)))])
    limit = caps[0]  # the same read as ``cut_after``
    texts = outbox_log.rows_after(conn, after, limit, outbox_module._CHANGE_SQL)  # noqa: SLF001
    rows = outbox_log.rows_after(conn, after, limit)
    if not rows:
        return
    # Each text SQLite built is the one Python builds.
    for (seq, ts, op, table, doc_id, body, _), (seq2, _, _, text) in zip(rows, texts, strict=True):
        assert seq == seq2
        assert text == outbox_module._change(seq, ts, op, table, doc_id, body)  # noqa: SLF001
    plain = outbox_module._cut(after, rows, UP, *caps)  # noqa: SLF001
    fast = outbox_module._whole_cut(after, texts, UP, *caps)  # noqa: SLF001
    if fast is not None:
        assert fast == plain
    else:  # declined: the plain cut stops early, skips or fills a hole
        takes_all = plain.last == rows[-1][0] and len(plain.encoded) == len(rows)
        assert not takes_all or any(UP.get(r[3]) != "up" for r in rows)


def test_the_common_batch_takes_the_fast_path() -> None:
    rng = random.Random(7)
    conn = sqlite3.connect(":memory:")
    conn.execute(outbox_log.HEAD_DDL)
    for n in range(1, 1001):
        conn.execute(
            "INSERT INTO change_log (ts, op, tbl, doc_id, after, origin) VALUES (?, 'insert', "
            "'readings', ?, ?, 'local')",
            (n, "k" * 31, json.dumps({"n": rng.random()})),
        )
    texts = outbox_log.rows_after(conn, 0, 1000, outbox_module._CHANGE_SQL)  # noqa: SLF001
    cut = outbox_module._whole_cut(0, texts, UP, 1000, MAX_BATCH_BYTES)  # noqa: SLF001
    assert cut is not None and (cut.first, cut.last, len(cut.encoded)) == (1, 1000, 1000)
