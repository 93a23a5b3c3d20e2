"""Secrets and registries on disk: written atomically, readable by the owner only, and
changed by one process at a time.

What the device passwords, the gateway keys of a hub, the broker's files and the saved
JWKS share (DESIGN decision 9: secrets live in the data directory, 0600). Standard
library only, so every layer and every command may use it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700
LOCK_FILE_NAME: Final = "lock"


def write_private_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically, readable by its owner only (0600): a
    temporary file in the same directory, fsynced, renamed over it, the directory fsynced
    so the rename itself survives a power cut."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp makes 0600 already; say so rather than rely on it
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (its entry, not the data)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def files_lock(directory: Path) -> Iterator[None]:
    """Hold the exclusive lock of the files in ``directory`` (made 0700 if missing; blocks
    until the lock is free): two commands, or a command and the gateway, never interleave
    their read-modify-write of a registry."""
    directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock
