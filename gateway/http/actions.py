"""Serving HTTP actions: one catch-all handler that routes to the app's ``http``.

The routes are read from ``gateway.app.http`` on every request, so an ``outpost dev``
reload is followed without re-registering anything. What happens to one request:

1. route: exact path, else the longest prefix, for the method (HEAD as GET); a path
   some route answers with another method is 405 with ``Allow``, else 404 with
   Convex's text ``No HttpAction routed for /x``;
2. identity: ``Authorization: Bearer <token>`` goes through ``gateway.verify_token``;
   a token it refuses is 401 before the handler runs, as Convex refuses a bad JWT on
   the site (any other scheme, e.g. a webhook's ``Basic``, is left to the handler);
3. body: read whole before the handler, under the API's rules (size, the shared
   in-flight budget, the per-chunk timeout; ``gateway.http.upload``), then handed back
   to the request, so ``read()``, ``text()``, ``json()``, ``post()`` and ``content``
   all work as aiohttp documents them;
4. run: the handler with an ``ActionCtx``, under the action time budget, its prints and
   logs logged as ``METHOD /path: [LOG] ...``; an exception is a 500 whose body names
   only its type (the trace goes to the log), or, once a streamed answer has begun, a
   cut connection; a return that is not an aiohttp response is a 500 that says what it
   was.

No CORS is added: the app answers OPTIONS with its own route and sets its headers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

from aiohttp import StreamReader, hdrs, web

from gateway.gateway import Gateway
from gateway.http.errors import RequestError
from gateway.http.upload import request_body
from gateway.runtime.context import ActionCtx
from gateway.runtime.http_router import HttpRoute, HttpRouter
from gateway.runtime.logs import LogBuffer, capture
from gateway.sync.auth import AuthenticationError

log = logging.getLogger("gateway.http.actions")

# Convex's limit for an HTTP action's request body (spec 6.4).
MAX_ACTION_BODY_BYTES: Final = 20 * 1024 * 1024

GATEWAY: Final = web.AppKey("outpost_site_gateway", Gateway)


async def handle(request: web.Request) -> web.StreamResponse:
    """Route one request to its HTTP action and answer what the action returned."""
    gateway = request.app[GATEWAY]
    router = gateway.app.http
    if not isinstance(router, HttpRouter):
        return _text(404, f"No HttpAction routed for {request.path}")
    route = router.lookup(request.method, request.path)
    if route is None:
        return _unrouted(router, request)
    identity = await _identity(gateway, request)
    if not request.body_exists:
        return await _run(gateway, route, request, identity)
    async with _buffered_body(request):
        return await _run(gateway, route, request, identity)


def _unrouted(router: HttpRouter, request: web.Request) -> web.Response:
    allowed = router.allowed(request.path)
    if allowed:
        text = f"{request.method} is not routed for {request.path}; routed: {', '.join(allowed)}"
        return _text(405, text, {hdrs.ALLOW: ", ".join(allowed)})
    return _text(404, f"No HttpAction routed for {request.path}")


async def _identity(gateway: Gateway, request: web.Request) -> Mapping[str, Any] | None:
    scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    if not token:
        raise RequestError(401, "InvalidAuthHeader", "Header must begin with `bearer `")
    try:
        return await gateway.verify_token(token)
    except AuthenticationError as exc:
        # The same 401 ``{code, message}`` the HTTP API answers (the verifier's code).
        raise RequestError(401, getattr(exc, "code", "Unauthenticated"), str(exc)) from None


@asynccontextmanager
async def _buffered_body(request: web.Request) -> AsyncIterator[None]:
    """Read the body whole (within the API's limits), then put it back in the request;
    the bytes count in the in-flight budget until the answer."""
    try:
        async with request_body(request) as raw:
            body = bytes(raw)
            # A fresh stream holding the whole body, sized so feeding it never pauses
            # the connection's reading: the handler reads it with aiohttp's own methods.
            limit = max(len(body), 2**16)
            reader = StreamReader(request.protocol, limit, loop=asyncio.get_running_loop())
            reader.feed_data(body)
            reader.feed_eof()
            request._payload = reader  # noqa: SLF001 - no public way to replace a body
            yield
    except RequestError as exc:
        if exc.status == 413:  # the shared reader words it for the API's limit
            raise _too_large() from None
        raise


async def _run(
    gateway: Gateway,
    route: HttpRoute,
    request: web.Request,
    identity: Mapping[str, Any] | None,
) -> web.StreamResponse:
    runtime = gateway.runtime
    ctx = ActionCtx(runtime, identity, time.time() * 1000)
    buffer = LogBuffer()
    label = f"{request.method} {request.path}"
    try:
        # asyncio.timeout, not wait_for: no task per request (3.11's wait_for makes one).
        with capture(buffer):
            async with asyncio.timeout(runtime.budgets.action_s):
                result = await route.action(ctx, request)
    except web.HTTPException:
        raise  # aiohttp's own answers (raise web.HTTPFound(...)) are answers
    except Exception as exc:  # noqa: BLE001 - the app's failure, answered 500
        log.error("%s (%s) failed", label, route.where, exc_info=exc)
        if request.writer.output_size > 0:
            # A streamed answer had begun: a 500 can no longer be sent, and the client
            # must not take the part it got for the whole, so the connection is cut
            # (the 500 below then goes nowhere; aiohttp logs nothing more).
            transport = request.transport
            if transport is not None:
                transport.abort()
        return _text(500, f"{label} raised {type(exc).__name__}; the trace is in the gateway's log")
    finally:
        for line in buffer.lines:
            log.info("%s: %s", label, line)
    if not isinstance(result, web.StreamResponse):
        shown = type(result).__name__
        log.error("%s (%s) returned a %s, not an aiohttp response", label, route.where, shown)
        return _text(
            500,
            f"{label} returned a {shown}; an HTTP action returns an aiohttp web.Response, "
            "web.StreamResponse or web.json_response(...)",
        )
    return result


def _too_large() -> RequestError:
    return RequestError(
        413,
        "PayloadTooLarge",
        f"the request body is larger than the limit of {MAX_ACTION_BODY_BYTES} bytes (20 MiB) "
        "for an HTTP action; send less data per request",
    )


def _text(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text, headers=headers)
