"""What the admin socket's tests share: an app with an internal query, short data
directories (an AF_UNIX path holds 107 bytes; pytest's ``tmp_path`` can be longer), and
a call over the socket with the standard library's ``http.client``."""

from __future__ import annotations

import json
import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.admin_socket import UnixHTTPConnection, admin_socket_path

SECRET_APP = """
from gateway import internal_query, query

@internal_query
async def secret(ctx, args):
    return "only admins"

@query
async def hello(ctx, args):
    return "hello"
"""


def write_secret_app(root: Path) -> Path:
    """An app with ``secrets:secret`` (internal) and ``secrets:hello`` (public)."""
    convex = root / "convex"
    convex.mkdir(parents=True)
    (convex / "secrets.py").write_text(textwrap.dedent(SECRET_APP))
    return root


@contextmanager
def short_dir() -> Iterator[Path]:
    """A fresh directory under the system's temp directory (short enough for a socket)."""
    path = Path(tempfile.mkdtemp(prefix="outpost-sock-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def query_over_socket(data_dir: Path, fn: str) -> tuple[int, dict[str, Any]]:
    """``POST /api/query`` for ``fn`` on the data directory's admin socket, with no key."""
    connection = UnixHTTPConnection(admin_socket_path(data_dir), timeout=30)
    try:
        body = json.dumps({"path": fn, "args": {}, "format": "json"})
        connection.request("POST", "/api/query", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()
