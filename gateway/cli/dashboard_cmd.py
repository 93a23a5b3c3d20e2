"""``outpost dashboard``: open the LAN dashboard, logged in, without the key in a URL.

It asks the running gateway for a single-use login token (``POST
/dashboard/login-token``: over the data directory's admin socket, no key needed, or
over HTTP with the admin key read from the data directory), prints
``<url>/dashboard/#login=<token>`` and opens it in a browser when this machine has
one. The token sits in the URL's fragment, which a browser never sends to a server,
and works once within a minute (``gateway.http.dashboard_login``). Standard library
only, like ``outpost run``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import urllib.error
import urllib.request
import webbrowser
from pathlib import Path
from typing import Any, Final

from gateway import admin_socket
from gateway.admin_key import read_admin_key
from gateway.cli.common import CommandError, has_display, settings_for
from gateway.tls import api_url, client_context

TOKEN_PATH: Final = "/dashboard/login-token"
TIMEOUT_S: Final = 10.0


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = commands.add_parser(
        "dashboard",
        parents=[common],
        help="open the LAN dashboard in a browser, logged in (prints its URL too)",
        description=(
            "Print a one-time login URL of the running gateway's dashboard (valid for a "
            "minute, once) and open it in this machine's browser when there is one."
        ),
    )
    parser.add_argument("app", metavar="APP_DIR", nargs="?", type=Path, default=Path("."))
    parser.add_argument(
        "--url", help="the gateway's URL as the browser reaches it (default http://HOST:PORT)"
    )
    parser.add_argument("--no-open", action="store_true", help="print the URL only")
    parser.set_defaults(handler=open_dashboard)


def open_dashboard(args: argparse.Namespace) -> int:
    settings = settings_for(args, args.app)
    local = api_url(settings)
    base = (args.url or local).rstrip("/")
    token = _login_token(Path(settings.data_dir), local, client_context(settings))
    url = f"{base}/dashboard/#login={token['token']}"
    print(url)
    print(
        f"(logs in once, within {token['expiresInS']:.0f} s; the page asks for the admin key after)"
    )
    if not args.no_open and has_display():
        try:
            webbrowser.open(url)
        except webbrowser.Error:
            pass  # printed above: open it by hand
    return 0


def _login_token(data_dir: Path, url: str, context: ssl.SSLContext) -> dict[str, Any]:
    """A fresh token from the gateway: over the admin socket, else HTTP with the key."""
    try:
        local = admin_socket.post(data_dir, TOKEN_PATH, b"{}", TIMEOUT_S)
    except (OSError, http.client.HTTPException) as exc:
        raise CommandError(f"the admin socket in {data_dir} failed ({exc})") from None
    if local is not None:
        status, raw = local
        return _token(status, raw)
    try:
        key = read_admin_key(data_dir)
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read the admin key in {data_dir} ({exc})") from None
    if key is None:
        raise CommandError(
            f"no admin key in {data_dir}: run from the app folder, or pass --data-dir as "
            "the server was given it"
        )
    headers = {"Content-Type": "application/json", "Authorization": f"Convex {key}"}
    request = urllib.request.Request(url + TOKEN_PATH, b"{}", headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as response:  # noqa: S310 - the gateway's own URL
            return _token(response.status, response.read())
    except urllib.error.HTTPError as exc:
        return _token(exc.code, exc.read())
    except (urllib.error.URLError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CommandError(
            f"no gateway answers at {url} ({reason}); is `outpost serve` running?"
        ) from None


def _token(status: int, raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("token"), str):
        message = body.get("message") if isinstance(body, dict) else raw[:200].decode("replace")
        raise CommandError(f"the gateway gave no login token: {message} (HTTP {status})")
    return body
