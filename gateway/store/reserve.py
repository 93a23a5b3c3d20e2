"""The reserve file: a few MiB of real blocks kept in the data directory, given back
when the disk fills.

A full disk is worst for SQLite at the moment it happens: a checkpoint needs room in
the database file, and the journal, the logs and the dashboard's reads need a little
too. So the gateway holds space in advance (``<data dir>/reserve``, written with real
zeros and fsynced: a sparse file would hold nothing) and deletes it when a write meets
ENOSPC. Writes are refused from then on (``diskfull.py``), so the space freed serves
the checkpoint and the rest, never more mutations that would fill it again.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Final

RESERVE_FILENAME: Final = "reserve"
_CHUNK: Final = 1024 * 1024
_MODE: Final = 0o600


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` says the filesystem (or the user's quota) is out of space."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged process may still write on ``directory``'s filesystem."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


class Reserve:
    """``size_bytes`` held in ``directory/reserve`` (0 = no reserve)."""

    def __init__(self, directory: Path, size_bytes: int) -> None:
        if size_bytes < 0:
            raise ValueError(f"the reserve's size must be 0 (none) or more, got {size_bytes}")
        self.path = directory / RESERVE_FILENAME
        self.size_bytes = size_bytes

    def held(self) -> bool:
        """Whether the file is there at its full size."""
        try:
            return self.size_bytes > 0 and self.path.stat().st_blocks * 512 >= self.size_bytes
        except FileNotFoundError:
            return False

    def ensure(self) -> None:
        """Create the file at its size unless it is there already (a blocking call).

        Raises ``OSError`` (ENOSPC when there is no room) with no partial file left."""
        if self.size_bytes == 0:
            self.release()  # the setting went to 0: give the space back
            return
        if self.held() and self.path.stat().st_size == self.size_bytes:
            return
        partial = self.path.with_name(RESERVE_FILENAME + ".partial")
        try:
            _write_zeros(partial, self.size_bytes)
            os.replace(partial, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            raise
        _sync_dir(self.path.parent)

    def release(self) -> bool:
        """Delete the file; True if there was one to delete."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True


def _write_zeros(path: Path, size: int) -> None:
    """``size`` bytes of allocated blocks: ``posix_fallocate`` where the filesystem
    supports it, else zeros written out; fsynced either way."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, _MODE)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            _zero_fill(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def _zero_fill(fd: int, size: int) -> None:
    zeros = bytes(_CHUNK)
    left = size
    while left > 0:
        left -= os.write(fd, zeros[: min(left, _CHUNK)])


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
