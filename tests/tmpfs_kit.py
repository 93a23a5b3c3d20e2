"""A small real filesystem for disk-full tests: a tmpfs of a few MiB mounted in a temp
directory (as root), filled with a filler file until a write fails.

Named apart from ``conftest`` so tests import it as ``from tmpfs_kit import ...``.
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FILLER = "filler"


@contextmanager
def small_tmpfs(where: Path, size_mib: int = 8, name: str = "fs") -> Iterator[Path]:
    """A tmpfs of ``size_mib`` mounted on ``where/name``; skipped where mounting is not
    allowed (not root, no CAP_SYS_ADMIN in this container)."""
    mount_point = where / name
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path) -> Path:
    """Write ``directory/filler`` until the filesystem has no byte left; its path."""
    filler = directory / FILLER
    chunk = bytes(64 * 1024)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                chunk = chunk[: len(chunk) // 2]
                if not chunk:
                    return filler
    finally:
        os.close(fd)


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, deadline_s: float = 15.0
) -> None:
    """Wait until ``await check()`` is true, failing with ``what`` past the deadline."""
    end = time.monotonic() + deadline_s
    while not await check():
        assert time.monotonic() < end, f"not within {deadline_s} s: {what}"
        await asyncio.sleep(0.05)
