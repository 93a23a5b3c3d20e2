"""``outpost status``: the replication figures of a running gateway (and of its edges on a
hub), and whether its disk is full.

It calls the admin-only system queries ``_system/replication:status`` and
``_system/disk:status`` through the HTTP API (``POST /api/query``), as ``outpost run``
does: over the data directory's admin socket (no key) when the gateway listens there and
no ``--url`` was given, else with the admin key from the data directory. No route of its
own, so the admin check and the error shape are every call's. On a hub it also calls
``_system/replication:gateways``.
When no gateway answers it says so in one line, prints the backlog it can read from the
store file, and exits 1. The calls use ``urllib`` or ``http.client`` and the offline
read ``sqlite3`` (read-only): no event loop and no store opened for a one-shot look, so
it never contends with the running gateway.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import sqlite3
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway import admin_socket
from gateway.admin_key import read_admin_key
from gateway.cli.common import CommandError, settings_for
from gateway.cli.status_text import render
from gateway.replication.edge_status import STATUS_PATH, read_backlog
from gateway.replication.hub_status import STATUS_PATH as GATEWAYS_PATH
from gateway.runtime.disk_status import DISK_STATUS_PATH
from gateway.store.layout import DB_FILENAME
from gateway.tls import api_url, client_context

TIMEOUT_S = 10.0


class NotRunning(Exception):
    """No gateway answers at the URL."""


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    status = commands.add_parser(
        "status",
        parents=[common],
        help="replication status: link, backlog, drain rate (and each edge on a hub); disk",
        description="Show the replication and disk status of the gateway at --url.",
    )
    status.add_argument("app", metavar="APP_DIR", nargs="?", type=Path, default=Path("."))
    status.add_argument("--app", dest="app_flag", type=Path, help="app folder, as for `run`")
    status.add_argument("--url", help="gateway URL (default http://HOST:PORT from the settings)")
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(handler=show_status)


def show_status(args: argparse.Namespace) -> int:
    settings = settings_for(args, args.app_flag or args.app)
    url = (args.url or api_url(settings)).rstrip("/")  # https:// with ``tls``
    data_dir = Path(settings.data_dir)
    query = _querier(url, data_dir, via_socket=not args.url, context=client_context(settings))
    try:
        status = query(STATUS_PATH)
        if status.get("hub"):
            status["gateways"] = query(GATEWAYS_PATH)
        status["disk"] = query(DISK_STATUS_PATH)
    except NotRunning as exc:
        return _offline(args, url, data_dir, str(exc))
    status["running"] = True
    print(json.dumps(status, indent=2) if args.json else render(status))
    return 0


def _offline(args: argparse.Namespace, url: str, data_dir: Path, why: str) -> int:
    print(f"outpost: no gateway is running at {url} ({why})", file=sys.stderr)
    backlog = offline_backlog(data_dir / DB_FILENAME)
    status: dict[str, Any] = {"running": False, "backlog": backlog}
    if args.json:
        print(json.dumps(status, indent=2))
    elif backlog is not None:
        print(render(status))
    return 1


def offline_backlog(path: Path) -> dict[str, Any] | None:
    """The backlog read from the store file (read-only), or None when it cannot be."""
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        return read_backlog(conn, time.time() * 1000)
    except sqlite3.Error:
        return None  # an older layout, or a store being written: nothing reliable to say
    finally:
        conn.close()


def _querier(
    url: str, data_dir: Path, *, via_socket: bool, context: ssl.SSLContext | None = None
) -> Callable[[str], Any]:
    """How to call an admin query: over the data directory's admin socket when
    ``via_socket`` and a gateway listens there (no key needed), else over HTTP at
    ``url`` with the admin key from the data directory."""
    if via_socket and admin_socket.listening(data_dir):
        return functools.partial(_query_socket, data_dir)
    try:
        key = read_admin_key(data_dir)
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read the admin key in {data_dir} ({exc})") from None
    return functools.partial(_query, url, key=key, context=context)


def _body(path: str) -> bytes:
    return json.dumps({"path": path, "args": {}, "format": "json"}).encode()


def _query_socket(data_dir: Path, path: str) -> Any:
    where = admin_socket.admin_socket_path(data_dir)
    try:
        answer = admin_socket.post(data_dir, "/api/query", _body(path), TIMEOUT_S)
    except (OSError, http.client.HTTPException) as exc:
        raise NotRunning(f"{where}: {exc}") from None
    if answer is None:
        raise NotRunning(f"{where} stopped accepting")
    status, raw = answer
    if status >= 400:
        raise CommandError(f"{where} answered HTTP {status}")
    return _value(where, raw, admin=True)


def _query(url: str, path: str, *, key: str | None, context: ssl.SSLContext | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Convex {key}"
    request = urllib.request.Request(f"{url}/api/query", data=_body(path), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as response:  # noqa: S310 - the user's own URL
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise CommandError(f"{url} answered HTTP {exc.code} ({exc.reason})") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise NotRunning(str(getattr(exc, "reason", exc))) from None
    return _value(url, raw, admin=bool(key))


def _value(where: object, raw: bytes, *, admin: bool) -> Any:
    """A query's value from its JSON reply; its error message as a ``CommandError``."""
    try:
        reply = json.loads(raw)
    except ValueError:
        raise CommandError(f"{where} did not answer JSON; is it an Outpost gateway?") from None
    if reply.get("status") != "success":
        hint = "" if admin else " (no admin key found: pass --app or --data-dir as the server has)"
        raise CommandError(f"{reply.get('errorMessage', reply)}{hint}")
    return reply.get("value")
