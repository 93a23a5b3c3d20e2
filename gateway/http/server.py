"""``HttpServer``: the API on a TCP port, started and closed by its owner."""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from gateway.config import Settings
from gateway.gateway import Gateway
from gateway.http.app import METRIC_SOURCES, build_app
from gateway.http.protocol import (
    ConnectionGuard,
    HttpSite,
    OutpostProtocol,
    default_max_connections,
)
from gateway.http.state import SLOT, GatewaySlot
from gateway.http.unix_site import UnixSocketSite
from gateway.metrics import Source, connection_metrics
from gateway.redact import install_redaction

access_log = logging.getLogger("gateway.http.access")

# An idle keep-alive connection is closed after this long (aiohttp's default is an
# hour, sized for reverse proxies; nginx's 75 s suits dashboards and SDK clients,
# which reconnect transparently, and frees descriptors of clients that went away).
KEEPALIVE_IDLE_S: Final = 75.0


class _AccessLogger(AbstractAccessLogger):
    """One debug line per request; the path only, never the query (``?adminKey=``)."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug(
            "%s %s %d %.1f ms", request.method, request.path, response.status, time * 1000
        )


_HANDLER_ARGS: Final[dict[str, Any]] = {
    "access_log_class": _AccessLogger,
    "access_log": access_log,
    "keepalive_timeout": KEEPALIVE_IDLE_S,
}


class HttpServer:
    """The HTTP API on one address; ``close`` is idempotent."""

    def __init__(
        self,
        gateway: Gateway | None = None,
        *,
        admin_key: str | None = None,
        settings: Settings | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.ssl_context = ssl_context  # HTTPS on the TCP port (never on the UNIX socket)
        install_redaction()
        self.app = build_app(gateway, admin_key=admin_key, settings=self.settings)
        self.guard: ConnectionGuard | None = None
        self._runner: web.AppRunner | None = None
        self._closed = False

    @property
    def slot(self) -> GatewaySlot:
        return self.app[SLOT]

    def add_metrics(self, source: Source) -> None:
        """Serve ``source``'s figures on ``/metrics`` too (an owner above the gateway)."""
        self.app[METRIC_SOURCES].append(source)

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
        # The limit is read now: the process raised its open-file limit before this.
        self.guard = ConnectionGuard(self.settings.max_connections or default_max_connections())
        self.add_metrics(functools.partial(connection_metrics, self.guard))
        try:
            self._runner, bound = await serve(
                self.app, host, port, self.settings, self.guard, self.ssl_context
            )
        except BaseException:
            await self.close()
            raise
        return bound

    async def listen_unix(self, path: Path) -> None:
        """Serve the API on a UNIX socket at ``path`` too (mode 0600; its requests are
        admin callers, ``gateway.http.admin``), under the same connection cap; ``close``
        stops it with the TCP port and removes the file."""
        if self._runner is None or self.guard is None:
            raise RuntimeError("start the HttpServer before adding its UNIX socket")
        factory = _protocol_factory(self._runner, self.settings, self.guard)
        site = UnixSocketSite(self._runner, path, factory)
        try:
            await site.start()
        except BaseException:
            site.remove()
            raise

    async def close(self) -> None:
        """Stop listening, finish in-flight requests (bounded), free the port."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._runner is not None:
                await self._runner.cleanup()
        finally:
            self.slot.forget_key()

    async def __aenter__(self) -> HttpServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def serve(
    app: web.Application,
    host: str,
    port: int,
    settings: Settings,
    guard: ConnectionGuard,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` with the API's connection rules (the cap counted in
    ``guard``, the head timeout, quiet errors), over TLS with ``ssl_context`` (the
    handshake gets the head's timeout); returns the runner and the bound port. The
    runner's ``cleanup`` stops it, waiting ``shutdown_timeout_s`` for handlers."""
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=settings.shutdown_timeout_s, **_HANDLER_ARGS
    )
    await runner.setup()
    try:
        factory = _protocol_factory(runner, settings, guard)
        await HttpSite(
            runner,
            host,
            port,
            factory,
            ssl_context=ssl_context,
            handshake_timeout_s=settings.request_header_timeout_s,
        ).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, int(runner.addresses[0][1])


def _protocol_factory(
    runner: web.AppRunner, settings: Settings, guard: ConnectionGuard
) -> Callable[[], OutpostProtocol]:
    """What makes each connection's protocol, the same for every site of ``runner``."""
    server = runner.server
    assert server is not None
    loop = asyncio.get_running_loop()
    head_timeout_s = settings.request_header_timeout_s

    def protocol() -> OutpostProtocol:
        return OutpostProtocol(
            server, loop=loop, guard=guard, head_timeout_s=head_timeout_s, **_HANDLER_ARGS
        )

    return protocol
