"""A 20k-document table: export and import stream it in chunks, never the whole table."""

from __future__ import annotations

import sqlite3
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from gateway import Int64
from gateway import snapshot as snap
from gateway.store import Store

COUNT = 20_000


def table_bytes(store: Store) -> int:
    conn = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT sum(length(body)) FROM documents").fetchone()[0])
    finally:
        conn.close()


async def test_large_table_streams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zip_path = tmp_path / "big.zip"
    async with await Store.open(tmp_path / "a") as store:

        def fill(tx):  # type: ignore[no-untyped-def]
            tx.create_table("big")
            for n in range(COUNT):
                doc = {"n": Int64(n), "text": f"{n:08d}" + "x" * 150, "b": b"\x00" * 8}
                tx.insert("big", doc, 1000.0 + n)

        await store.write(fill)
        size = table_bytes(store)
        assert size > 3_000_000

        seen: list[tuple[str, int, int]] = []
        tracemalloc.start()
        try:
            result = await snap.export_snapshot(store, zip_path, progress=lambda *a: seen.append(a))
            _, export_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result.tables == {"big": COUNT}
    # One chunk of rows is a few hundred kB at most; the table is several MB.
    assert export_peak < size / 4, (export_peak, size)
    assert seen[-1] == ("big", COUNT, COUNT)
    assert all(b[1] - a[1] == snap.CHUNK_ROWS for a, b in zip(seen, seen[1:-1]))

    # Import: the checking pass holds one line at a time ...
    tracemalloc.start()
    try:
        plan = snap._scan(zip_path)
        _, scan_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert plan.tables[0].count == COUNT
    assert scan_peak < size / 4, (scan_peak, size)

    # ... and every write job carries one chunk of documents.
    batches: list[int] = []
    real_insert = snap._insert

    def spy(tx: Any, table: str, batch: Any, mode: Any) -> None:
        batches.append(len(batch))
        real_insert(tx, table, batch, mode)

    monkeypatch.setattr(snap, "_insert", spy)
    progress: list[tuple[str, int, int]] = []
    async with await Store.open(tmp_path / "b") as store:
        imported = await snap.import_snapshot(
            store, zip_path, progress=lambda *a: progress.append(a)
        )
        assert imported.tables == {"big": COUNT}
        assert max(batches) == snap.CHUNK_ROWS and sum(batches) == COUNT
        assert progress[-1] == ("big", COUNT, COUNT)

        def check(tx):  # type: ignore[no-untyped-def]
            info = tx.catalog.table("big")
            docs = [d for _, _, d in tx.scan(info.indexes["by_creation_time"], b"", None)]
            return len(docs), docs[0], docs[-1]

        (n, first, last), _ = await store.read(check)
    assert n == COUNT
    assert first["n"] == Int64(0) and type(first["n"]) is Int64 and first["b"] == b"\x00" * 8
    assert last["_creationTime"] == 1000.0 + COUNT - 1
