"""The sync WebSocket endpoint: ``GET /api/{version}/sync`` and ``GET /api/sync``.

aiohttp's defaults do not fit (DESIGN decision 8): frames up to the HTTP API's body
limit (16 MiB + 2000 bytes) instead of 4 MiB, no permessage-deflate (the spec makes it
optional; CPU on a Pi is dearer than LAN bandwidth), protocol pings every 20 s with a
peer that misses the pong dropped. Each socket's frames go to its ``SyncSession``; the
sockets still open when the server shuts down are closed with 1001 (``on_shutdown``),
all at once, within the HTTP server's ``shutdown_timeout_s``.

A close never waits on the peer for long: aiohttp's close drains the write buffer
(forever, for a peer that stopped reading) and then waits for the peer's close frame.
Past ``CLOSE_TIMEOUT_S`` the connection is cut, and whatever is still unsent when the
session ends is dropped (``transport.abort``): otherwise asyncio keeps the descriptor
and the buffer until the stopped peer reads again, which may be never.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import traceback
from collections.abc import Callable
from typing import Final

from aiohttp import WSCloseCode, WSMsgType, web

from gateway.http.errors import MAX_BODY_BYTES
from gateway.http.state import slot_of
from gateway.http.upload import LIMITS
from gateway.offload import BIG_JSON_BYTES, run_off_loop
from gateway.sync import protocol as p
from gateway.sync.session import AuthRefused, SyncSession

log = logging.getLogger("gateway.sync")

MAX_FRAME_BYTES: Final = MAX_BODY_BYTES
PROTOCOL_PING_S: Final = 20.0
TRIM_AFTER_FRAME_BYTES: Final = 1 << 20  # see ``_give_back_memory``
CLOSE_TIMEOUT_S: Final = 5.0  # a close's drain plus the wait for the peer's close frame


class _Socket:
    """``Transport`` over an aiohttp WebSocketResponse."""

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None) -> None:
        self._ws = ws
        self._transport = transport
        self._high_water = transport.get_write_buffer_limits()[1] if transport else 0

    async def send(self, frame: bytes) -> None:
        await self._ws.send_frame(frame, WSMsgType.TEXT)

    def ready(self, size: int) -> bool:
        # Below the high-water mark after this write, asyncio does not pause writing,
        # so aiohttp's send returns without waiting for the peer to drain.
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        return transport.get_write_buffer_size() + size <= self._high_water

    async def close(self, code: int, reason: str) -> None:
        """Close within ``CLOSE_TIMEOUT_S``; a peer that does not take it is cut."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._ws.close(code=code, message=reason.encode()[:120])
        finally:
            self.cut_if_stuck()

    def cut_if_stuck(self) -> None:
        """Drop the connection if bytes are still waiting for the peer to read them."""
        transport = self._transport
        if transport is not None and transport.get_write_buffer_size() > 0:
            transport.abort()


SOCKETS: Final = web.AppKey("outpost_sync_sockets", set[_Socket])
CLOSE_BUDGET_S: Final = web.AppKey("outpost_sync_close_budget_s", float)


async def sync_socket(request: web.Request) -> web.WebSocketResponse:
    """One sync session for the life of the socket."""
    slot = slot_of(request)
    gateway = slot.require()  # 503 before the gateway is ready (clients retry)
    ws = web.WebSocketResponse(
        max_msg_size=MAX_FRAME_BYTES,
        compress=False,
        heartbeat=PROTOCOL_PING_S,
        timeout=CLOSE_TIMEOUT_S,
    )
    await ws.prepare(request)
    transport = request.transport
    socket = _Socket(ws, transport if isinstance(transport, asyncio.Transport) else None)
    sockets = request.app[SOCKETS]
    sockets.add(socket)
    session = gateway.sync.open_session(
        socket,
        admin_key=slot.admin_key,
        max_query_bytes=gateway.settings.max_socket_query_bytes,
    )
    largest = 0
    try:
        largest = await _serve(ws, session, request.app[LIMITS].parse_slots)
    finally:
        await session.close()
        sockets.discard(socket)
        _break_cycles(request, ws)
    if largest >= TRIM_AFTER_FRAME_BYTES:
        _give_back_memory()
    return ws


async def _serve(
    ws: web.WebSocketResponse, session: SyncSession, parse_slots: asyncio.Semaphore
) -> int:
    """Hand the socket's frames to ``session`` until either side ends it; returns the
    size of the largest text frame (its locals, the last frame among them, go when it
    returns). A big frame is parsed off the loop, sharing the HTTP server's parse slots
    (``gateway.offload``): a few 12 MB frames parsed on the loop stalled ``/health`` for
    over a second."""
    largest = 0
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            largest = max(largest, len(msg.data))
            try:
                if len(msg.data) < BIG_JSON_BYTES:
                    await session.receive(msg.data)
                else:
                    await session.handle(await _parse_off_loop(msg.data, parse_slots))
            except p.ProtocolError as exc:
                await session.fail(p.fatal_error(str(exc)), WSCloseCode.POLICY_VIOLATION, "")
                break
            except AuthRefused as exc:
                frame = p.auth_error(str(exc), exc.base_version)
                await session.fail(frame, WSCloseCode.OK, "AuthError")
                break
        elif msg.type == WSMsgType.BINARY:
            refusal = "binary frames are not part of the sync protocol; send JSON text"
            await session.fail(p.fatal_error(refusal), WSCloseCode.UNSUPPORTED_DATA, "")
            break
        else:  # ERROR (an oversized frame, a broken peer): aiohttp closes the socket
            log.debug("sync socket error: %s", ws.exception())
            break
    return largest


async def _parse_off_loop(text: str, slots: asyncio.Semaphore) -> p.ClientMessage:
    parse = functools.partial(p.parse_client_message, big=True)
    return await run_off_loop(slots, parse, text, quiet=(p.ProtocolError,))


def _give_back_memory() -> None:
    """Return the C heap's free memory to the system (glibc's ``malloc_trim``).

    A socket that sent megabyte frames (arguments up to ``max_socket_query_bytes``)
    leaves the heap large once they are freed: glibc raises its mmap threshold after
    freeing a big block, so later ones come from the heap, which it does not shrink by
    itself. Measured: 30 sockets with one 10 MB query each, RssAnon 2 s after they
    closed: 897 MB without, ~45 MB with a trim. Rare (megabyte frames only) and a no-op
    where there is no glibc."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes  # only once a socket needed it: no cost at startup
    import ctypes.util

    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    trim = getattr(libc, "malloc_trim", None)
    return trim if callable(trim) else None


def _break_cycles(request: web.Request, ws: web.WebSocketResponse) -> None:
    """Let reference counting free a finished socket's objects at once.

    aiohttp (3.14) keeps every finished WebSocket connection alive longer than needed:
    the request's protocol keeps the socket's data callback after the connection is
    lost, and a drop stores an exception whose traceback holds the socket's frames
    (cycles: ~50 objects a connection waiting for a full collection); and data that
    arrives after the close (the peer's close frame) re-arms the protocol-ping timer,
    which then holds the closed socket, its request and its buffers for
    ``PROTOCOL_PING_S``. Under churn that was 20 s of closed connections (fuzz soak:
    RssAnon +83 MB in 5 minutes). Private attributes, hence ``getattr``: a later aiohttp
    without them just keeps its own behaviour."""
    exc = ws.exception()
    while exc is not None:
        traceback.clear_frames(exc.__traceback__)
        exc = exc.__context__
    protocol = request.protocol
    if getattr(protocol, "_data_received_cb", None) is not None:
        protocol._data_received_cb = None  # type: ignore[union-attr]
    cancel_pings = getattr(ws, "_cancel_heartbeat", None)
    if callable(cancel_pings):
        cancel_pings()


async def close_sync_sockets(app: web.Application) -> None:
    """``on_shutdown``: close every open sync socket (1001, going away), all at once;
    those not closed within the server's shutdown timeout are cut."""
    sockets: set[_Socket] = app[SOCKETS]
    await close_all(list(sockets), app[CLOSE_BUDGET_S])


async def close_all(sockets: list[_Socket], timeout_s: float) -> None:
    """Close ``sockets`` concurrently; cut the ones still closing after ``timeout_s``."""
    if not sockets:
        return
    tasks = [
        asyncio.create_task(
            s.close(WSCloseCode.GOING_AWAY, "ServerShutdown"), name="outpost-sync-shutdown"
        )
        for s in sockets
    ]
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        task.cancel()  # a cancelled close cuts its connection itself (``cut_if_stuck``)
    # Their outcomes, errors and cancellations included, are of no further use; a
    # cancellation of this shutdown itself still propagates.
    await asyncio.gather(*tasks, return_exceptions=True)
    if pending:
        log.info("%d sync sockets did not close within %.1f s: cut", len(pending), timeout_s)


def add_sync_routes(app: web.Application, *, shutdown_timeout_s: float = 10.0) -> None:
    """The sync routes, the open-socket registry and its shutdown hook, which closes
    them within ``shutdown_timeout_s`` (the HTTP server's ``shutdown_timeout_s``)."""
    app[SOCKETS] = set()
    app[CLOSE_BUDGET_S] = shutdown_timeout_s
    app.router.add_get("/api/sync", sync_socket)
    app.router.add_get("/api/{version}/sync", sync_socket)
    app.on_shutdown.append(close_sync_sockets)
