"""The reserve file and the disk-full state, without filling a disk: the reserve is
made with real blocks, released once, made again; the guard enters on SQLITE_FULL or
ENOSPC only, refuses writes with a message a user can act on, and leaves by itself."""

from __future__ import annotations

import errno
import logging
import sqlite3
from pathlib import Path

import pytest
from tmpfs_kit import eventually, fill, small_tmpfs

from gateway.errors import CommitError, DiskFullError
from gateway.store import Store
from gateway.store.diskfull import DiskGuard, is_disk_full
from gateway.store.reserve import RESERVE_FILENAME, Reserve

MIB = 1024 * 1024


def test_the_reserve_is_real_blocks_of_its_size(tmp_path: Path) -> None:
    reserve = Reserve(tmp_path, 2 * MIB)
    assert not reserve.held()
    reserve.ensure()
    st = (tmp_path / RESERVE_FILENAME).stat()
    assert st.st_size == 2 * MIB
    assert st.st_blocks * 512 >= 2 * MIB  # allocated, not sparse
    assert st.st_mode & 0o777 == 0o600
    assert reserve.held()
    assert not (tmp_path / f"{RESERVE_FILENAME}.partial").exists()


def test_released_once_then_made_again(tmp_path: Path) -> None:
    reserve = Reserve(tmp_path, MIB)
    reserve.ensure()
    assert reserve.release() is True
    assert not reserve.path.exists()
    assert reserve.release() is False
    reserve.ensure()
    assert reserve.held()


def test_a_new_size_is_taken_and_zero_gives_the_space_back(tmp_path: Path) -> None:
    Reserve(tmp_path, MIB).ensure()
    Reserve(tmp_path, 3 * MIB).ensure()
    assert (tmp_path / RESERVE_FILENAME).stat().st_size == 3 * MIB
    Reserve(tmp_path, 0).ensure()
    assert not (tmp_path / RESERVE_FILENAME).exists()
    with pytest.raises(ValueError, match="0 \\(none\\) or more"):
        Reserve(tmp_path, -1)


def test_what_counts_as_a_full_disk() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13  # type: ignore[attr-defined]
    assert is_disk_full(full)
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    wrapped = CommitError("could not commit")
    wrapped.__cause__ = full
    assert is_disk_full(wrapped)
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = 5  # type: ignore[attr-defined]
    assert not is_disk_full(busy)
    assert not is_disk_full(OSError(errno.EIO, "I/O error"))
    assert not is_disk_full(ValueError("no"))


async def test_the_guard_enters_releases_refuses_and_leaves_by_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "gateway.store")
    guard = DiskGuard(tmp_path, Reserve(tmp_path, MIB), check_interval_s=0.05)
    await guard.start()
    try:
        assert guard.reserve.held()
        guard.check()  # not full: nothing raised
        assert not guard.failed(OSError(errno.EIO, "I/O error"))
        assert guard.failed(OSError(errno.ENOSPC, "No space left on device"))
        assert guard.failed(OSError(errno.ENOSPC, "again"))  # entered once
        assert guard.entered == 1
        # The watch may already have made it again (the disk is not full): either way
        # the state was entered and is left by itself.
        with pytest.raises(DiskFullError) as refused:
            if guard.full:
                guard.check()
            else:
                raise guard.refusal()
        text = str(refused.value)
        assert str(tmp_path) in text and "full" in text and "MiB free" in text
        assert "not applied" in text and "no restart" in text

        async def left() -> bool:
            return not guard.full

        await eventually(left, "the guard leaves the disk-full state")
        assert guard.reserve.held()
        assert await guard.wait_writable(0.01)
    finally:
        await guard.close()
        await guard.close()  # twice is safe
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if "writes are accepted" in r.getMessage()]
    assert len(warnings) == 1 and "is full" in warnings[0].getMessage()
    assert len(infos) == 1


async def test_a_store_refuses_writes_while_full_and_counts_no_commit(tmp_path: Path) -> None:
    def full_commit(conn: sqlite3.Connection) -> None:
        if failing:
            raise OSError(errno.ENOSPC, "No space left on device")
        conn.execute("COMMIT")

    failing = False
    async with await Store.open(
        tmp_path / "d", reserve_bytes=MIB, disk_check_interval_s=60, commit_fn=full_commit
    ) as store:
        assert (tmp_path / "d" / RESERVE_FILENAME).stat().st_size == MIB
        await store.write(lambda tx: tx.conn.execute("CREATE TABLE t (n INTEGER)"))
        failing = True
        with pytest.raises(DiskFullError, match="is full"):
            await store.write(lambda tx: tx.conn.execute("INSERT INTO t VALUES (1)"))
        assert store.disk.full
        assert not (tmp_path / "d" / RESERVE_FILENAME).exists()
        failing = False  # the disk has room now, but the state holds until the watch looks
        commits = store.writer.stats.commits
        with pytest.raises(DiskFullError):
            await store.write(lambda tx: tx.conn.execute("INSERT INTO t VALUES (2)"))
        assert store.writer.stats.commits == commits
        rows, _ = await store.read(lambda tx: tx.conn.execute("SELECT n FROM t").fetchall())
        assert rows == []


async def test_an_io_error_counts_as_full_only_on_a_full_disk(tmp_path: Path) -> None:
    ioerr = sqlite3.OperationalError("disk I/O error")
    ioerr.sqlite_errorcode = 4874  # type: ignore[attr-defined] # SQLITE_IOERR_SHMSIZE
    roomy = DiskGuard(tmp_path, Reserve(tmp_path, 0))
    assert not roomy.failed(ioerr)
    with small_tmpfs(tmp_path, size_mib=2) as fs:
        fill(fs)
        guard = DiskGuard(fs, Reserve(fs, 0))
        try:
            assert guard.failed(ioerr)
            assert guard.full
        finally:
            await guard.close()
