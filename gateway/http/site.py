"""``SiteServer``: HTTP actions on their own port, as Convex serves ``.convex.site``.

It is the API's server in every rule that protects the process: connections count in
the API's ``ConnectionGuard`` (one cap for the descriptors of both ports), requests
get the same head timeout, bodies draw on the API's in-flight budget with the same
per-chunk timeout. Only the routes differ: one catch-all handler
(``gateway.http.actions``) and no CORS, which is the app's job on this origin.
"""

from __future__ import annotations

import ssl

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.config import Settings
from gateway.errors import StoreClosedError
from gateway.gateway import Gateway
from gateway.http.actions import GATEWAY, MAX_ACTION_BODY_BYTES, handle
from gateway.http.errors import RequestError, error_response, refusal_response
from gateway.http.hosts import HostPolicy, host_middleware
from gateway.http.protocol import ConnectionGuard
from gateway.http.server import serve
from gateway.http.upload import LIMITS, BodyBudget, BodyLimits, ClientDisconnected
from gateway.redact import install_redaction


class SiteServer:
    """The gateway's HTTP actions on one address; ``close`` is idempotent."""

    def __init__(
        self,
        gateway: Gateway,
        settings: Settings,
        budget: BodyBudget,
        guard: ConnectionGuard,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        install_redaction()
        self.settings = settings
        self.guard = guard
        self.ssl_context = ssl_context  # HTTPS, as the API
        self.app = build_site_app(gateway, settings, budget)
        self._runner: web.AppRunner | None = None
        self._closed = False

    @property
    def listening(self) -> bool:
        return self._runner is not None and not self._closed

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: an ephemeral port); returns the bound port."""
        if self._closed or self._runner is not None:
            raise RuntimeError("a SiteServer starts once")
        self._runner, bound = await serve(
            self.app, host, port, self.settings, self.guard, self.ssl_context
        )
        return bound

    async def close(self) -> None:
        """Stop listening and finish in-flight actions (bounded by ``shutdown_timeout_s``)."""
        if self._closed:
            return
        self._closed = True
        if self._runner is not None:
            await self._runner.cleanup()


def build_site_app(gateway: Gateway, settings: Settings, budget: BodyBudget) -> web.Application:
    """The site's aiohttp app: every method and path goes to ``actions.handle``."""
    hosts = host_middleware(HostPolicy.from_settings(settings))
    app = web.Application(client_max_size=MAX_ACTION_BODY_BYTES, middlewares=[hosts, _refusals])
    app[GATEWAY] = gateway
    app[LIMITS] = BodyLimits(
        budget, settings.request_body_timeout_s, max_body_bytes=MAX_ACTION_BODY_BYTES
    )
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@web.middleware
async def _refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refusals before an action runs get Convex's ``{code, message}`` body."""
    try:
        return await handler(request)
    except (RequestError, StoreClosedError) as exc:
        return refusal_response(exc)
    except ClientDisconnected:  # left during its body: normal churn, nobody reads an answer
        return error_response(400, "ClientDisconnected", "the client closed the connection")
