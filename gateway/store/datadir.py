"""The data directory: created private, claimed by one process, and the one-line
reasons it cannot be used.

The store holds everything a gateway was told (and, beside it, the admin key), so
the directory is 0700 and the store files 0600, like the key; looser modes left by
an older version are tightened at open, with one warning.

Every failure here leaves the files as they were and becomes a
``StoreUnavailableError`` whose text names the cause and what to do (see
``layout.open_checked`` for why a start must stop rather than "repair").
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

from gateway.errors import StoreUnavailableError
from gateway.store.layout import DB_FILENAME
from gateway.store.lock import LOCK_FILENAME, StoreLock

log = logging.getLogger("gateway.store")

DIR_MODE = 0o700
FILE_MODE = 0o600
_PRIVATE_FILES = (DB_FILENAME, f"{DB_FILENAME}-wal", f"{DB_FILENAME}-shm", LOCK_FILENAME)


def claim(data_dir: Path) -> StoreLock:
    """Create ``data_dir`` (0700) if needed, lock it for this process, make the store
    file exist with mode 0600 (SQLite gives ``-wal``/``-shm`` the main file's mode)."""
    make_private_dir(data_dir)
    try:
        lock = StoreLock.acquire(data_dir)
    except OSError as exc:
        raise dir_unavailable(data_dir, exc) from exc
    try:
        _tighten(data_dir)
        _create_private(data_dir / DB_FILENAME)
    except OSError as exc:
        lock.release()
        raise dir_unavailable(data_dir, exc) from exc
    except BaseException:
        lock.release()
        raise
    return lock


def dir_unavailable(data_dir: Path, exc: OSError) -> StoreUnavailableError:
    """One line for an ``OSError`` on the data directory: the cause and what to do."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EROFS:
        text = (
            f"the data directory {data_dir} is on a read-only filesystem; remount it "
            "read-write or use another --data-dir"
        )
    elif exc.errno in (errno.EACCES, errno.EPERM):
        text = (
            f"cannot write the data directory {data_dir} ({reason}); run Outpost as the "
            "user that owns it or use another --data-dir"
        )
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        text = f"the disk holding {data_dir} is full; free some space and start again"
    elif exc.errno == errno.ENOTDIR:
        text = f"cannot create the data directory {data_dir}: a part of its path is a file"
    else:
        text = f"cannot use the data directory {data_dir} ({reason})"
    return StoreUnavailableError(f"{text} (nothing was changed)")


def make_private_dir(data_dir: Path) -> None:
    """Create ``data_dir`` (mode 0700) if missing; one-line ``StoreUnavailableError`` if not
    possible (a file in its place, a read-only filesystem, no permission)."""
    if data_dir.exists() and not data_dir.is_dir():
        raise StoreUnavailableError(
            f"the data directory {data_dir} is a file, not a directory; move it away or "
            "use another --data-dir"
        )
    try:
        # ``mode`` applies to the last component only: parents get the usual modes.
        data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise dir_unavailable(data_dir, exc) from exc


def _tighten(data_dir: Path) -> None:
    """Take group and other bits off the directory and the store files; one warning."""
    loose = [(data_dir, DIR_MODE)] if _is_loose(data_dir) else []
    loose += [(data_dir / name, FILE_MODE) for name in _PRIVATE_FILES if _is_loose(data_dir / name)]
    for path, mode in loose:
        os.chmod(path, mode)
    if loose:
        log.warning(
            "%s was open to other users; tightened to 0700 (directory) / 0600 (files): %s",
            data_dir,
            ", ".join(path.name for path, _ in loose),
        )


def _is_loose(path: Path) -> bool:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    return not stat.S_ISLNK(mode) and bool(mode & 0o077)


def _create_private(db: Path) -> None:
    try:
        fd = os.open(db, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)
