"""The admin socket: ``<data dir>/outpost.sock``, where the local CLI calls without a key.

The server listens there (mode 0600, its own user) besides its TCP port; a request on
it is an admin caller with no key, guarded by the file's permissions alone, as Docker's
and systemd's sockets are. That exposes nothing new: whoever may open a 0600 file in
the data directory may read the 0600 ``admin_key`` beside it. One place for both
sides, standard library only: the CLI talks to it without importing aiohttp.
"""

from __future__ import annotations

import http.client
import os
import socket
from pathlib import Path
from typing import Final

ADMIN_SOCKET_FILENAME: Final = "outpost.sock"
# sockaddr_un's sun_path is 108 bytes on Linux, one of them the terminating NUL.
MAX_SOCKET_PATH_BYTES: Final = 107


def admin_socket_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / ADMIN_SOCKET_FILENAME


def fits(path: Path) -> bool:
    """Whether ``path`` is short enough to bind or connect an AF_UNIX socket to."""
    return len(os.fsencode(path)) <= MAX_SOCKET_PATH_BYTES


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over the admin socket at ``path`` (the Host header is cosmetic)."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(os.fspath(self._path))
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def post(
    data_dir: Path | str, url_path: str, body: bytes, timeout_s: float
) -> tuple[int, bytes] | None:
    """POST ``body`` (JSON) to ``url_path`` over the data directory's admin socket: the
    status and body, or None when no gateway listens there (no socket file, a path too
    long for one, or a file left by a killed process), so the caller uses HTTP."""
    path = admin_socket_path(data_dir)
    if not fits(path) or not path.is_socket():
        return None
    connection = UnixHTTPConnection(path, timeout_s)
    try:
        try:
            connection.connect()
        except (ConnectionRefusedError, FileNotFoundError, PermissionError):
            return None  # stale, gone, or another user's: HTTP with the key decides
        headers = {"Content-Type": "application/json"}
        connection.request("POST", url_path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def listening(data_dir: Path | str) -> bool:
    """Whether a gateway accepts on the data directory's admin socket (for this user)."""
    path = admin_socket_path(data_dir)
    if not fits(path) or not path.is_socket():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(os.fspath(path))
        except OSError:
            return False
    return True
