"""``HttpServer``: the API on a TCP port, started and closed by its owner."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Final

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from gateway.gateway import Gateway
from gateway.http.app import build_app
from gateway.http.state import SLOT, GatewaySlot

access_log = logging.getLogger("gateway.http.access")

# Below systemd's TimeoutStopSec (90 s) with room for the writer to drain after us.
SHUTDOWN_TIMEOUT_S: Final = 10.0


class _AccessLogger(AbstractAccessLogger):
    """One debug line per request; the path only, never the query (``?adminKey=``)."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug(
            "%s %s %d %.1f ms", request.method, request.path, response.status, time * 1000
        )


class HttpServer:
    """The HTTP API on one address; ``close`` is idempotent."""

    def __init__(self, gateway: Gateway | None = None, *, admin_key: str | None = None) -> None:
        self.app = build_app(gateway, admin_key=admin_key)
        self._runner: web.AppRunner | None = None
        self._closed = False

    @property
    def slot(self) -> GatewaySlot:
        return self.app[SLOT]

    def attach(self, gateway: Gateway) -> None:
        """Start serving calls to ``gateway`` (readiness turns 200)."""
        self.slot.attach(gateway)

    def detach(self) -> None:
        """Refuse calls with 503 (call before closing the gateway)."""
        self.slot.detach()

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: an ephemeral port); returns the bound port."""
        if self._closed or self._runner is not None:
            raise RuntimeError("an HttpServer starts once")
        runner = web.AppRunner(
            self.app,
            handle_signals=False,
            access_log_class=_AccessLogger,
            access_log=access_log,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        self._runner = runner
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await self.close()
            raise
        bound = runner.addresses[0]
        return int(bound[1])

    async def close(self) -> None:
        """Stop listening, finish in-flight requests (bounded), free the port."""
        if self._closed:
            return
        self._closed = True
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> HttpServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
