"""``/dashboard/``: the LAN dashboard's files, served from the package.

The page itself is public (it holds no data; every call it makes carries the admin
key), so fetching it needs no key; the ``Host`` allowlist applies as everywhere. The
files are read once, on first use, and kept with a gzip copy and a strong ETag: a Pi
compresses each file once, a browser revalidates (``no-cache`` + ``If-None-Match``,
a 304 on the LAN costs a round trip) so an upgraded gateway never serves a stale mix
of modules. No CORS on these paths (``gateway.http.cors``) and a strict CSP: only the
gateway's own scripts run, no frames.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from typing import Final

from aiohttp import hdrs, web

from gateway.dashboard import static_dir
from gateway.http.dashboard_login import add_login_routes

PREFIX: Final = "/dashboard/"
INDEX: Final = "index.html"
# Smaller files are sent as they are: gzip's header and a CPU's time buy nothing.
MIN_GZIP_BYTES: Final = 512
_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
}
# ``connect-src`` names the socket's own origin too (filled in per request): browsers
# before CSP 3 (Safari < 15.4) do not count ws:// to the same host as 'self'.
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' {sockets}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class Asset:
    """One file of the page, ready to send."""

    body: bytes
    gzipped: bytes | None
    etag: str
    content_type: str


def load_assets() -> dict[str, Asset]:
    """Every file of the page by its name (one flat folder)."""
    assets = {}
    for entry in static_dir().iterdir():
        if entry.is_file() and not entry.name.startswith("."):
            assets[entry.name] = _asset(entry.name, entry.read_bytes())
    return assets


def _asset(name: str, body: bytes) -> Asset:
    suffix = name[name.rfind(".") :]
    content_type = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    gzipped = gzip.compress(body, 9, mtime=0) if len(body) >= MIN_GZIP_BYTES else None
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    return Asset(body, gzipped, etag, content_type)


ASSETS: Final = web.AppKey("outpost_dashboard_assets", dict[str, Asset])


def add_dashboard_routes(app: web.Application) -> None:
    """The page's routes and its login exchange; call before the slash fold."""
    app[ASSETS] = {}
    app.router.add_get("/dashboard", redirect_to_page)
    app.router.add_get(PREFIX, get_page)
    app.router.add_get(PREFIX + "{name:[A-Za-z0-9_.-]+}", get_asset)
    add_login_routes(app, PREFIX)


async def redirect_to_page(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect(PREFIX)


async def get_page(request: web.Request) -> web.StreamResponse:
    return _send(request, INDEX)


async def get_asset(request: web.Request) -> web.StreamResponse:
    return _send(request, request.match_info["name"])


def _send(request: web.Request, name: str) -> web.StreamResponse:
    assets = request.app[ASSETS]
    if not assets:
        assets.update(load_assets())
    asset = assets.get(name)
    if asset is None:
        raise web.HTTPNotFound(text=f"the dashboard has no file {name!r}")
    host = request.host  # allowed by the Host policy (a middleware) before this runs
    headers = {
        **SECURITY_HEADERS,
        "Content-Security-Policy": _CSP.format(sockets=f"ws://{host} wss://{host}"),
        hdrs.ETAG: asset.etag,
        hdrs.CACHE_CONTROL: "no-cache",
        hdrs.VARY: "Accept-Encoding",
    }
    if asset.etag in request.headers.get(hdrs.IF_NONE_MATCH, ""):
        return web.Response(status=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in request.headers.get(hdrs.ACCEPT_ENCODING, ""):
        body = asset.gzipped
        headers[hdrs.CONTENT_ENCODING] = "gzip"
    headers[hdrs.CONTENT_TYPE] = asset.content_type
    return web.Response(body=body, headers=headers)
