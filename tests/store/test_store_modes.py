"""The data directory is private: 0700, and the store files 0600 (like the admin key)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from gateway.runtime.storage import BlobDirectory
from gateway.store import Store
from gateway.store.layout import DB_FILENAME
from gateway.store.lock import LOCK_FILENAME

STORE_FILES = [DB_FILENAME, f"{DB_FILENAME}-wal", f"{DB_FILENAME}-shm", LOCK_FILENAME]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_data_directory_and_its_store_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    old_umask = os.umask(0o022)  # the usual one: what made them 0755 / 0644 before
    try:
        store = await Store.open(data)
    finally:
        os.umask(old_umask)
    try:
        await store.write(lambda tx: None)  # a commit: the WAL exists
        assert mode(data) == 0o700
        assert {name: mode(data / name) for name in STORE_FILES} == dict.fromkeys(
            STORE_FILES, 0o600
        )
    finally:
        await store.close()


async def test_loose_modes_are_tightened_at_open_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await Store.open(tmp_path / "d")
    await store.close()
    data = tmp_path / "d"
    data.chmod(0o755)
    (data / DB_FILENAME).chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="gateway.store"):
        store = await Store.open(data)
        await store.close()
    assert mode(data) == 0o700 and mode(data / DB_FILENAME) == 0o600
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"{data} was open to other users; tightened to 0700 (directory) / 0600 (files): "
        f"d, {DB_FILENAME}"
    ]


def test_stored_blobs_are_private(tmp_path: Path) -> None:
    blobs = BlobDirectory(tmp_path / "storage")
    old_umask = os.umask(0o022)
    try:
        blobs.write("kid123", b"payload")
    finally:
        os.umask(old_umask)
    assert mode(blobs.root) == 0o700
    assert mode(blobs.path("kid123")) == 0o600
