"""``outpost run FN [JSON]``: call a function on a running gateway, like ``npx convex run``.

Goes through the HTTP API (``POST /api/function``) as an admin, so internal functions
work and the call is the same one any client makes: over the data directory's admin
socket when the gateway listens there and no ``--url`` was given (no key needed),
else over HTTP with the admin key read from the data directory. Standard
library only: a one-shot command should start fast on a Pi.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gateway import admin_socket
from gateway.admin_key import admin_key_path, read_admin_key
from gateway.cli.common import CommandError, UsageError, settings_for
from gateway.tls import api_url, client_context


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    run = commands.add_parser(
        "run",
        parents=[common],
        help="call a function on a running gateway (internal ones too)",
        description="Call FN with JSON args on the gateway at --url; print its value as JSON.",
    )
    run.add_argument("function", metavar="FN", help='a function path, e.g. "readings:latest"')
    run.add_argument("args_json", metavar="JSON", nargs="?", default="{}", help="arguments")
    run.add_argument("--url", help="gateway URL (default http://HOST:PORT from the settings)")
    run.add_argument("--app", type=Path, default=Path("."), help="app folder (default .)")
    run.set_defaults(handler=run_function)


def run_function(args: argparse.Namespace) -> int:
    settings = settings_for(args, args.app)
    url = (args.url or api_url(settings)).rstrip("/")  # https:// with ``tls``
    body = {"path": args.function, "args": _parse_args(args.args_json)}
    timeout_s = settings.action_budget_s + 30  # an action may run this long; then give up
    data_dir = Path(settings.data_dir)
    data = json.dumps({**body, "format": "convex_encoded_json"}).encode()
    # Without --url, the local gateway's admin socket: no admin key needed.
    context = client_context(settings)
    reply, admin = _call(url, data_dir, data, timeout_s, via_socket=not args.url, context=context)
    for line in reply.get("logLines") or []:
        print(line, file=sys.stderr)
    if reply.get("status") != "success":
        print(f"outpost: {reply.get('errorMessage', reply)}", file=sys.stderr)
        if not admin and "Could not find public function" in str(reply):
            print(
                f"outpost: no admin key in {admin_key_path(data_dir)}, so only public "
                "functions can be called; run from the app folder, or pass --app or "
                "--data-dir as the server was given them",
                file=sys.stderr,
            )
        if reply.get("errorData") is not None:
            print(f"error data: {json.dumps(reply['errorData'])}", file=sys.stderr)
        return 1
    print(json.dumps(reply.get("value"), indent=2, ensure_ascii=False))
    return 0


def _parse_args(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"the arguments are not JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise UsageError(f"the arguments must be a JSON object, like '{{\"x\": 1}}': {text!r}")
    return value


def _admin_key(data_dir: Path) -> str | None:
    """The local gateway's admin key, where the server keeps it; None (public functions
    still work) when there is none."""
    try:
        return read_admin_key(data_dir)
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read the admin key in {data_dir} ({exc})") from None


def _call(
    url: str,
    data_dir: Path,
    data: bytes,
    timeout_s: float,
    *,
    via_socket: bool,
    context: ssl.SSLContext | None = None,
) -> tuple[dict[str, Any], bool]:
    """The reply, and whether it was called as an admin: over the data directory's
    admin socket (no key needed) when ``via_socket`` and a gateway listens there, else
    over HTTP at ``url`` with the admin key from the data directory when there is one."""
    if via_socket:
        try:
            local = admin_socket.post(data_dir, "/api/function", data, timeout_s)
        except TimeoutError:
            raise CommandError(f"no answer on the admin socket in {timeout_s:.0f} s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise CommandError(f"the admin socket in {data_dir} failed ({exc})") from None
        if local is not None:
            status, raw = local
            if status >= 400:
                error = _json_object(raw)
                raise CommandError(f"{error.get('message') or error} (HTTP {status})")
            return _json_object(raw), True
    admin_key = _admin_key(data_dir)
    reply = _post(f"{url}/api/function", data, admin_key, timeout_s, context)
    return reply, admin_key is not None


def _post(
    url: str,
    data: bytes,
    admin_key: str | None,
    timeout_s: float,
    context: ssl.SSLContext | None = None,
) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if admin_key:
        headers["Authorization"] = f"Convex {admin_key}"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:  # noqa: S310 - the user's own URL
            return _json_object(response.read())
    except urllib.error.HTTPError as exc:
        error = _json_object(exc.read(), fallback=exc.reason)
        raise CommandError(f"{error.get('message') or error} (HTTP {exc.code})") from None
    except TimeoutError:
        raise CommandError(f"no answer from {url} in {timeout_s:.0f} s") from None
    except urllib.error.URLError as exc:
        raise CommandError(
            f"no gateway answers at {url} ({exc.reason}); is `outpost serve` running? "
            "(--url, --port or --host point elsewhere)"
        ) from None


def _json_object(raw: bytes, fallback: Any = None) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    return {"message": str(fallback or raw[:200])}
