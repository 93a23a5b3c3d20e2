"""Opening a store file: integrity check, damaged files moved aside, layout versions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway import Gateway
from gateway.errors import DamagedStoreError, LayoutTooNewError
from gateway.store import Store
from gateway.store.layout import DB_FILENAME

APP = {
    "notes": """
        from gateway import mutation, query

        @mutation
        async def add(ctx, args):
            return await ctx.db.insert("notes", {"text": args["text"]})

        @query
        async def count(ctx, args):
            return len(await ctx.db.query("notes").collect())
    """
}


async def _fill(tmp_path: Path, make_app, n: int = 200) -> Path:
    app = make_app(**APP)
    async with Gateway.open(app, tmp_path / "d") as gw:
        for i in range(n):
            await gw.run_mutation("notes:add", {"text": f"note {i} " + "x" * 500})
    return app


async def test_a_damaged_file_is_moved_aside_never_deleted(make_app, tmp_path) -> None:
    app = await _fill(tmp_path, make_app)
    db = tmp_path / "d" / DB_FILENAME
    raw = bytearray(db.read_bytes())
    for offset in range(4096 * 2, min(len(raw), 4096 * 6)):  # trash b-tree pages
        raw[offset] = 0x5A
    db.write_bytes(bytes(raw))
    original = bytes(raw)
    with pytest.raises(DamagedStoreError) as caught:
        async with Gateway.open(app, tmp_path / "d"):
            pass
    message = str(caught.value)
    moved = [
        p
        for p in (tmp_path / "d").iterdir()
        if ".damaged-" in p.name and not p.name.endswith(("-wal", "-shm"))
    ]
    assert len(moved) == 1
    assert str(moved[0]) in message
    assert ".recover" in message and "outpost import" in message
    assert moved[0].read_bytes() == original
    # The next start begins with an empty store and works.
    async with Gateway.open(app, tmp_path / "d") as gw:
        assert await gw.run_query("notes:count") == 0


async def test_a_file_that_is_not_a_database_is_moved_aside(make_app, tmp_path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / DB_FILENAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DamagedStoreError, match="moved to"):
        await Store.open(tmp_path / "d")
    assert any(".damaged-" in p.name for p in (tmp_path / "d").iterdir())


async def test_a_layout_newer_than_the_code_is_refused(tmp_path) -> None:
    store = await Store.open(tmp_path)
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    conn.execute("UPDATE meta SET value = '999' WHERE key = 'layout_version'")
    conn.commit()
    conn.close()
    with pytest.raises(LayoutTooNewError, match="newer Outpost"):
        await Store.open(tmp_path)
    assert (tmp_path / DB_FILENAME).exists()  # refused, not moved


async def test_gateway_id_is_generated_once_and_kept(tmp_path) -> None:
    store = await Store.open(tmp_path)
    first = store.gateway_id
    await store.close()
    store = await Store.open(tmp_path)
    await store.close()
    assert store.gateway_id == first and len(first) == 32


async def test_wal_mode_and_full_sync(tmp_path) -> None:
    store = await Store.open(tmp_path)
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
