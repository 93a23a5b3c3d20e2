"""One TCP connection of the API: admitted under a cap, timed while it sends its head,
quiet and secret-free when its bytes are not HTTP.

aiohttp's ``RequestHandler`` (the asyncio protocol behind every connection) has no
timeout for a request's line and headers and no limit on connections, so
2,000 clients sending a header byte a minute held 2,000 descriptors forever, and past
the open-file limit ``accept()`` failed in a loop. ``OutpostProtocol`` adds:

- a cap: past ``max_connections`` open connections (HTTP and WebSocket alike) a new
  one gets a fixed 503 and is closed before anything is read, so the process never
  runs out of descriptors and ``accept()`` never fails;
- a head timeout: a connection that opened, or started a new request (sent its first
  byte after the previous answer), and has not completed the request line and headers
  within ``request_header_timeout_s`` is closed;
- its own answer to bytes that are not HTTP: aiohttp's quotes the parser's message,
  which quotes the raw line or header (and so the admin key in ``?adminKey=`` or
  ``Authorization``), and logs it with a traceback; here the answer and the debug
  line name only the kind of error.

The body's own timeout and budget live in ``upload.py``: only the handler knows when
it reads a body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final, Protocol

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from gateway.http.errors import error_response

log = logging.getLogger("gateway.http")

# Room kept below the open-file limit when max_connections is 0. asyncio accepts up to
# the backlog per loop turn before any protocol runs, and a refused or evicted
# connection's descriptor is closed a turn or two later, so ~3 backlogs of descriptors
# are open beyond the cap in a flood; the store, its WAL, stored files and logs need
# theirs. Measured under ulimit -n 1024 with 3,000 reconnecting slow clients: backlog
# 128 still hit EMFILE (accept() paused 1 s each time), backlog 64 never did.
BACKLOG: Final = 64
_FD_RESERVE_MIN: Final = 256
_FD_RESERVE_SHARE: Final = 0.1
_REFUSAL_WARNING_INTERVAL_S: Final = 60.0

_REFUSAL_BODY: Final = json.dumps(
    {
        "code": "TooManyConnections",
        "message": "the gateway has as many connections open as it allows "
        "(max_connections); retry shortly",
    }
).encode()
_REFUSAL: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
    % (len(_REFUSAL_BODY), _REFUSAL_BODY)
)


def default_max_connections() -> int:
    """The cap when ``max_connections`` is 0: the soft open-file limit less a reserve."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    reserve = max(_FD_RESERVE_MIN, int(soft * _FD_RESERVE_SHARE))
    return max(16, soft - reserve)


class Evictable(Protocol):
    def evict(self) -> None: ...


class ConnectionGuard:
    """Counts a server's open connections against its cap. When full, a new connection
    takes the place of the one that has waited on its client the longest (for a head or
    for body bytes): slow clients cannot keep others out. With none such (every place
    runs a handler or a WebSocket) it is refused; that warns once a minute."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.open = 0
        self.refused = 0
        self.evicted = 0
        # Connections waiting on their client, the longest-silent first.
        self._waiting: OrderedDict[Evictable, None] = OrderedDict()
        self._clock = clock
        self._refused_since_warning = 0
        self._last_warning = float("-inf")

    def admit(self) -> bool:
        if self.open < self.limit:
            self.open += 1
            return True
        if self._waiting:
            victim, _ = self._waiting.popitem(last=False)
            self.evicted += 1
            victim.evict()  # its place is free once its connection_lost runs
            self.open += 1
            return True
        self._refuse()
        return False

    def waiting(self, connection: Evictable) -> None:
        """``connection`` waits on its client (and heard from it just now)."""
        self._waiting[connection] = None
        self._waiting.move_to_end(connection)

    def busy(self, connection: Evictable) -> None:
        """``connection`` runs a handler (or a WebSocket): never evicted."""
        self._waiting.pop(connection, None)

    def leave(self, connection: Evictable) -> None:
        self._waiting.pop(connection, None)
        self.open -= 1

    def _refuse(self) -> None:
        self.refused += 1
        self._refused_since_warning += 1
        now = self._clock()
        if now - self._last_warning >= _REFUSAL_WARNING_INTERVAL_S:
            log.warning(
                "refused %d new connection(s): %d are open, the limit (max_connections)",
                self._refused_since_warning,
                self.open,
            )
            self._last_warning = now
            self._refused_since_warning = 0


class OutpostProtocol(RequestHandler):
    """aiohttp's request handler with a connection cap, a head timeout and quiet errors."""

    __slots__ = (
        "_guard",
        "_admitted",
        "_head_timeout_s",
        "_head_timer",
        "_idle",
        "_answered",
        "_body_pending",
    )

    def __init__(
        self,
        manager: web.Server,
        *,
        loop: asyncio.AbstractEventLoop,
        guard: ConnectionGuard,
        head_timeout_s: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self._guard = guard
        self._admitted = False
        self._head_timeout_s = head_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None
        self._idle = True  # between requests: the next byte starts a head
        self._answered = 0
        self._body_pending = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._guard.admit():
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(_REFUSAL)
            transport.close()
            return
        self._admitted = True
        super().connection_made(transport)
        self._guard.waiting(self)
        self._arm_head_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return  # refused: aiohttp never saw it
        self._admitted = False
        self._guard.leave(self)
        self._disarm_head_timer()
        task = self._task_handler
        super().connection_lost(exc)
        if task is not None and not task.done() and not self._request_in_progress:
            # Between requests the task only waits for bytes or drains an unread body
            # (aiohttp's lingering close, which the lost connection never ends: up to
            # 10 s); no handler runs, so nothing is cut short.
            task.cancel()

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        # aiohttp counts the heads it parsed (the count is how this subclass can tell a
        # completed head from bytes of a head or a body).
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:
            self._idle = False
            self._disarm_head_timer()
            self._guard.busy(self)
            return
        if self._idle and data and self._head_timer is None:
            self._arm_head_timer()
        if self._idle or self._body_pending:
            self._guard.waiting(self)  # heard from just now: the last to be evicted

    async def finish_response(
        self, request: BaseRequest, resp: StreamResponse, start_time: float | None
    ) -> tuple[StreamResponse, bool]:
        answer = await super().finish_response(request, resp, start_time)
        self._answered += 1
        if self._answered >= self._request_count and self._admitted:
            self._idle = True  # an idle keep-alive: aiohttp's keepalive_timeout applies
            self._guard.waiting(self)
        return answer

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        """Bytes that are not HTTP (400) or a failure outside our middleware (500)."""
        if status >= 500:
            log.error("unhandled error on a connection", exc_info=exc)
            resp = error_response(status, "InternalServerError", "the gateway failed (see its log)")
        else:
            kind = type(exc).__name__ if exc is not None else "malformed"
            log.debug("refused a request that is not valid HTTP/1.1: %s", kind)
            resp = error_response(
                status,
                "BadRequest",
                f"the request is not valid HTTP/1.1 ({kind}); send a request line and headers "
                "of printable characters, each line ended by CRLF",
            )
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was already being sent; cannot send an error")
        resp.force_close()
        return resp

    def body_pending(self, pending: bool) -> None:
        """The handler waits for (``True``) or has (``False``) the body's bytes."""
        self._body_pending = pending
        if pending and self._admitted:
            self._guard.waiting(self)
        else:
            self._guard.busy(self)

    def evict(self) -> None:
        """Close at once: a new connection needs this one's place."""
        log.debug("closed a connection waiting on its client to admit a new one")
        self._disarm_head_timer()
        self.force_close()

    def drop_unread_body(self) -> None:
        """Close after this answer without draining the rest of the body: it stopped
        coming, so aiohttp's lingering close (read and discard for 10 s) would only wait."""
        self._lingering_time = 0.0

    def _arm_head_timer(self) -> None:
        self._head_timer = self._loop.call_later(self._head_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._idle and self.transport is not None:
            log.debug(
                "closed a connection whose request head took over %g s (request_header_timeout_s)",
                self._head_timeout_s,
            )
            self.force_close()


class HttpSite(web.BaseSite):
    """A TCP site whose connections are ``OutpostProtocol``s made by ``factory``; with
    ``ssl_context``, TLS whose handshake must end within ``handshake_timeout_s`` (the
    protocol, and its head timeout, start once it has)."""

    __slots__ = ("_host", "_port", "_factory", "_handshake_timeout_s")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        factory: Callable[[], OutpostProtocol],
        *,
        backlog: int = BACKLOG,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout_s: float | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._factory = factory
        self._handshake_timeout_s = handshake_timeout_s if ssl_context is not None else None

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._factory,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=True,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self._handshake_timeout_s,
        )
