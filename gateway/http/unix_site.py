"""The API on the admin socket (``gateway.admin_socket``): bound private, removed after.

The socket file is made 0600 between ``bind`` and ``listen``: a connection to a socket
that does not listen yet is refused, so no other user ever connects through a wider
mode (Linux gives a new socket file ``0777 & ~umask``). A file left by a killed process
(nothing accepts on it) is replaced; one a live process accepts on, or a path that is
not a socket, is refused rather than taken over or deleted.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from gateway.admin_socket import MAX_SOCKET_PATH_BYTES, fits
from gateway.http.protocol import BACKLOG, OutpostProtocol

log = logging.getLogger("gateway.http")


class PathTooLong(OSError):
    """The socket's path is longer than AF_UNIX allows."""


def bind_private(path: Path) -> socket.socket:
    """A socket bound at ``path`` with mode 0600, not listening yet; a stale file replaced."""
    if not fits(path):
        raise PathTooLong(
            errno.ENAMETOOLONG,
            f"{path} is {len(os.fsencode(path))} bytes, longer than a UNIX socket's "
            f"{MAX_SOCKET_PATH_BYTES}",
        )
    _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fspath(path))
        os.chmod(path, 0o600)
    except BaseException:
        sock.close()
        raise
    return sock


def _remove_stale(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(errno.EEXIST, f"{path} exists and is not a socket; move it away")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(os.fspath(path))
        except ConnectionRefusedError:
            log.info("replaced %s, left by a process that stopped without removing it", path)
            path.unlink(missing_ok=True)
            return
    raise OSError(
        errno.EADDRINUSE, f"another process accepts on {path}; stop the gateway using this data"
    )


class UnixSocketSite(web.BaseSite):
    """The API's connections (``OutpostProtocol``s) on a bound UNIX socket; the file is
    removed when the site stops, unless another process has replaced it since."""

    __slots__ = ("_path", "_sock", "_factory", "_identity")

    def __init__(
        self,
        runner: web.BaseRunner,
        path: Path,
        factory: Callable[[], OutpostProtocol],
    ) -> None:
        super().__init__(runner, backlog=BACKLOG)
        self._path = path
        self._factory = factory
        self._sock = bind_private(path)
        found = path.stat()
        self._identity = (found.st_dev, found.st_ino)

    @property
    def name(self) -> str:
        return f"http://unix:{self._path}:"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(
            self._factory, sock=self._sock, backlog=self._backlog
        )

    async def stop(self) -> None:
        try:
            await super().stop()
        finally:
            self.remove()

    def remove(self) -> None:
        """Close the socket and remove its file if it is still ours; idempotent."""
        self._sock.close()
        try:
            found = self._path.stat()
        except FileNotFoundError:
            return
        if (found.st_dev, found.st_ino) == self._identity:
            self._path.unlink(missing_ok=True)
