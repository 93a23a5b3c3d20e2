"""``outpost backup`` / ``outpost restore`` (``gateway/backup.py``): a backup taken while
writes go on is one consistent moment; a restore brings back every document and stored
file, keeps the data directory's gateway id, starts a replication epoch above both
stores', and deletes nothing; bad files are refused with a reason."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from gateway import Gateway
from gateway.backup import MANIFEST, BackupError, backup, restore
from gateway.store.layout import DB_FILENAME

OUTPOST = Path(sys.executable).parent / "outpost"
SCHEMA = """
from gateway import define_schema, define_table, v
schema = define_schema({"readings": define_table({"n": v.float64()}).replicate("up")})
"""
FUNCTIONS = """
from gateway import mutation, query

@mutation
async def add(ctx, args):
    return await ctx.db.insert("readings", {"n": args["n"]})

@mutation
async def put_file(ctx, args):
    return await ctx.storage.store(args["text"].encode())

@query
async def numbers(ctx, args):
    return sorted(d["n"] for d in await ctx.db.query("readings").collect())

@query
async def file_text(ctx, args):
    data = await ctx.storage.get(args["id"])
    return None if data is None else data.decode()
"""


def write_app(root: Path) -> Path:
    (root / "convex").mkdir(parents=True, exist_ok=True)
    (root / "convex" / "schema.py").write_text(textwrap.dedent(SCHEMA))
    (root / "convex" / "readings.py").write_text(textwrap.dedent(FUNCTIONS))
    return root


def meta(data: Path) -> dict[str, str]:
    return meta_of(data / DB_FILENAME)


def meta_of(store: Path) -> dict[str, str]:
    conn = sqlite3.connect(store)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()


async def test_a_backup_under_writes_is_one_moment_and_restores_whole(tmp_path: Path) -> None:
    app, data = write_app(tmp_path / "app"), tmp_path / "d"
    target = tmp_path / "b.tar"
    async with Gateway.open(app, data) as gw:
        file_id = await gw.run_mutation("readings:put_file", {"text": "hello"})
        written = 0
        done = asyncio.Event()

        async def writer() -> None:
            nonlocal written
            while not done.is_set():
                await gw.run_mutation("readings:add", {"n": float(written)})
                written += 1

        task = asyncio.create_task(writer())
        await asyncio.sleep(0.2)
        before = written
        result = await asyncio.to_thread(backup, data, target)
        after = written
        done.set()
        await task
        source = meta(data)
    assert result.files == 1 and not result.missing_files
    restored = tmp_path / "r"
    outcome = restore(restored, target)
    async with Gateway.open(app, restored) as gw:
        numbers = await gw.run_query("readings:numbers", {})
        text = await gw.run_query("readings:file_text", {"id": file_id})
    # One moment: the writes acknowledged before the backup began, then a prefix of the rest.
    assert before <= len(numbers) <= after + 1
    assert numbers == [float(n) for n in range(len(numbers))]
    assert text == "hello"
    assert outcome.gateway_id == source["gateway_id"]  # an empty directory takes the backup's
    assert outcome.epoch == int(source["epoch"]) + 1


async def test_a_restore_keeps_the_directory_s_gateway_and_moves_the_old_store_aside(
    tmp_path: Path,
) -> None:
    app = write_app(tmp_path / "app")
    a, b = tmp_path / "a", tmp_path / "b"
    async with Gateway.open(app, a) as gw:
        await gw.run_mutation("readings:add", {"n": 1.0})
    async with Gateway.open(app, b) as gw:
        await gw.run_mutation("readings:add", {"n": 2.0})
        await gw.store.bump_epoch("a test: this directory's store is at a later epoch")
        await gw.store.bump_epoch("again")
    before_b, source = meta(b), meta(a)
    backup(a, tmp_path / "a.tar")
    outcome = restore(b, tmp_path / "a.tar")
    after = meta(b)
    assert after["gateway_id"] == before_b["gateway_id"] != source["gateway_id"]
    assert int(after["epoch"]) == max(int(before_b["epoch"]), int(source["epoch"])) + 1
    assert int(after["last_ts"]) >= int(before_b["last_ts"])  # timestamps never go back
    async with Gateway.open(app, b) as gw:
        assert await gw.run_query("readings:numbers", {}) == [1.0]
        assert gw.store.epoch == outcome.epoch  # the open took it as is (no second bump)
    kept = [
        p
        for p in outcome.moved_aside
        if p.name.startswith(f"{DB_FILENAME}.before-restore-") and not p.name.endswith("-wal")
    ]
    assert len(kept) == 1
    conn = sqlite3.connect(kept[0])  # the replaced store, whole
    assert conn.execute("SELECT count(*) FROM documents").fetchone()[0] >= 1
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


async def test_a_replaced_store_killed_with_its_wal_full_is_kept_whole(tmp_path: Path) -> None:
    """The store being replaced was killed with writes only in its WAL: they are kept
    (folded into the file set aside), and none of them is replayed into the restored
    store, which a WAL left beside it would be."""
    app = write_app(tmp_path / "app")
    a, b = tmp_path / "a", tmp_path / "b"
    async with Gateway.open(app, a) as gw:
        await gw.run_mutation("readings:add", {"n": 1.0})
    backup(a, tmp_path / "a.tar")
    async with Gateway.open(app, b) as gw:
        await gw.run_mutation("readings:add", {"n": 2.0})
    kill = (
        "import sqlite3, sys, os\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('PRAGMA wal_autocheckpoint = 0')\n"
        "c.execute(\"INSERT INTO meta (key, value) VALUES ('only-in-the-wal', 'x')\")\n"
        "os._exit(0)\n"
    )
    args = [sys.executable, "-c", kill, str(b / DB_FILENAME)]
    await asyncio.to_thread(subprocess.run, args, check=True, timeout=30)
    assert (b / f"{DB_FILENAME}-wal").stat().st_size > 0
    outcome = restore(b, tmp_path / "a.tar")
    assert "only-in-the-wal" not in meta(b)
    async with Gateway.open(app, b) as gw:
        assert await gw.run_query("readings:numbers", {}) == [1.0]
    aside = next(p for p in outcome.moved_aside if not p.name.endswith("-wal"))
    assert "only-in-the-wal" in meta_of(aside)


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    ("members", "says"),
    [
        (None, "not a tar file"),
        ({"x.txt": b"x"}, f"lacks {MANIFEST}"),
        ({MANIFEST: b"{", DB_FILENAME: b""}, "is not JSON"),
        ({MANIFEST: b'{"format": "other"}', DB_FILENAME: b""}, "not a backup this Outpost reads"),
        (
            {MANIFEST: b'{"format": "outpost-backup/1", "layout": 99}', DB_FILENAME: b""},
            "made by a newer Outpost",
        ),
        (
            {MANIFEST: b'{"format": "outpost-backup/1"}', DB_FILENAME: b"not sqlite" * 100},
            "not a SQLite database",
        ),
        (
            {MANIFEST: b'{"format": "outpost-backup/1"}', DB_FILENAME: b"", "../evil": b"x"},
            "which no backup has",
        ),
    ],
)
def test_a_file_that_is_not_a_backup_is_refused_and_nothing_moves(
    tmp_path: Path, members: dict[str, bytes] | None, says: str
) -> None:
    source = tmp_path / "bad.tar"
    if members is None:
        source.write_text("plain text")
    else:
        _tar(source, members)
    data = tmp_path / "d"
    data.mkdir()
    (data / DB_FILENAME).write_bytes(b"the current store")
    with pytest.raises(BackupError, match=says):
        restore(data, source)
    assert (data / DB_FILENAME).read_bytes() == b"the current store"
    assert sorted(p.name for p in data.iterdir()) == [DB_FILENAME]


def _outpost(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(OUTPOST), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_cli_backs_up_while_serving_and_restores_once_stopped(tmp_path: Path) -> None:
    app, data = write_app(tmp_path / "app"), tmp_path / "d"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env["OUTPOST_MQTT_BROKER"] = "off"
    common = ["--app", str(app), "--data-dir", str(data)]
    archive = str(tmp_path / "b.tar")
    serve = subprocess.Popen(
        [OUTPOST, "serve", str(app), "--data-dir", str(data), "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert serve.stdout is not None
        url = serve.stdout.readline().strip().rsplit(" ", 1)[1]
        call = _outpost("run", "--url", url, "readings:add", json.dumps({"n": 7}), env=env)
        assert call.returncode == 0, call.stderr
        made = _outpost("backup", archive, *common, env=env)
        assert made.returncode == 0, made.stderr
        assert "backed up the store" in made.stdout
        refused = _outpost("restore", archive, *common, env=env)
        assert refused.returncode != 0
        assert "open in another process" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
        if serve.stdout is not None:
            serve.stdout.close()
    done = _outpost("restore", archive, *common, env=env)
    assert done.returncode == 0, done.stderr
    assert "replication epoch" in done.stdout and "kept what it replaced" in done.stdout
