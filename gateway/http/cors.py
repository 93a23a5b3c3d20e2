"""CORS on the API, as Convex's backend has it (wire spec 1.1).

Echo the Origin and the requested headers, allow credentials, the six methods, and
let browsers cache a preflight for a day. Preflights are answered under ``/api/``
only: a path the API does not serve gets no blanket permission to be called
cross-origin (HTTP actions live on their own port and answer their own OPTIONS).
"""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

ALLOWED_METHODS: Final = "GET, POST, OPTIONS, PATCH, DELETE, PUT"
PREFLIGHT_MAX_AGE_S: Final = 86400


@web.middleware
async def preflight_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a preflight ``OPTIONS`` under ``/api/`` before routing errors apply."""
    if (
        request.method == hdrs.METH_OPTIONS
        and _under_api(request.path)
        and hdrs.ORIGIN in request.headers
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    ):
        headers = {
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: ALLOWED_METHODS,
            hdrs.ACCESS_CONTROL_MAX_AGE: str(PREFLIGHT_MAX_AGE_S),
        }
        requested = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS)
        if requested:
            headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = requested
        return web.Response(status=200, headers=headers)
    return await handler(request)


def _under_api(path: str) -> bool:
    # Repeated slashes are folded before routing (routing.py), so fold them here too.
    return path.lstrip("/").startswith("api/")


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer (errors, WebSockets too) carries CORS, but
    ``/metrics``: this machine reads it without a key, and a page in a browser on this
    machine must not (CORS would let any site's script read it); and ``/dashboard``: its
    login answers the admin key to a same-origin page only."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None or request.path == "/metrics" or request.path.startswith("/dashboard"):
        return
    response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
    response.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
    response.headers.add(hdrs.VARY, hdrs.ORIGIN)
