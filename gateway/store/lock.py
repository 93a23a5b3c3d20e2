"""One Outpost process per data directory: an ``flock`` held for the life of a ``Store``.

SQLite's own locks cannot say this: WAL mode lets any number of processes open the
file, and two writers on one store would each think their clock and catalog are the
only ones. So ``<data_dir>/outpost.lock`` is locked exclusively (``flock``, not
``fcntl`` record locks: an ``flock`` belongs to the open file description, so two
``Store`` objects in one process conflict too, and the kernel drops it when the
process dies, even by ``kill -9``; a stale file never blocks a start). The holder
writes its PID into the file so that the one refused can name it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from gateway.errors import StoreUnavailableError

LOCK_FILENAME = "outpost.lock"

# The holder writes its PID right after it takes the lock; a refused opener that reads
# an empty file in between waits this long for the PID to appear.
_PID_WAIT_S = 0.5


class StoreLock:
    """The exclusive hold of one data directory; ``release`` is idempotent."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path) -> StoreLock:
        """Lock ``data_dir`` for this process, or raise naming the holder's PID.

        ``OSError`` (read-only filesystem, permission) is left to the caller to word."""
        path = data_dir / LOCK_FILENAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise StoreUnavailableError(
                f"the data directory {data_dir} is in use by another Outpost process "
                f"({_holder(path)}); stop it first or use another --data-dir"
            ) from None
        try:
            _write_pid(fd)
        except BaseException:
            os.close(fd)  # closing drops the flock
            raise
        return cls(path, fd)

    def release(self) -> None:
        """Unlock (by closing the file). The file stays: removing it would race a
        process that has just opened it and is about to lock it."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _holder(path: Path) -> str:
    deadline = time.monotonic() + _PID_WAIT_S
    while True:
        try:
            text = path.read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            text = ""
        if text.isdigit():
            return f"PID {text}"
        if time.monotonic() > deadline:
            return "PID unknown"
        time.sleep(0.01)
