"""The sync WebSocket endpoint: ``GET /api/{version}/sync`` and ``GET /api/sync``.

aiohttp's defaults do not fit (DESIGN decision 8): frames up to the HTTP API's body
limit (16 MiB + 2000 bytes) instead of 4 MiB, no permessage-deflate (the spec makes it
optional; CPU on a Pi is dearer than LAN bandwidth), protocol pings every 20 s with a
peer that misses the pong dropped. Each socket's frames go to its ``SyncSession``; the
sockets still open when the server shuts down are closed with 1001 (``on_shutdown``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from aiohttp import WSCloseCode, WSMsgType, web

from gateway.http.errors import MAX_BODY_BYTES
from gateway.http.state import slot_of
from gateway.sync import protocol as p
from gateway.sync.session import AuthRefused

log = logging.getLogger("gateway.sync")

MAX_FRAME_BYTES: Final = MAX_BODY_BYTES
PROTOCOL_PING_S: Final = 20.0
SOCKETS: Final = web.AppKey("outpost_sync_sockets", set[web.WebSocketResponse])


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
        await self._ws.close(code=code, message=reason.encode()[:120])


async def sync_socket(request: web.Request) -> web.WebSocketResponse:
    """One sync session for the life of the socket."""
    slot = slot_of(request)
    gateway = slot.require()  # 503 before the gateway is ready (clients retry)
    ws = web.WebSocketResponse(
        max_msg_size=MAX_FRAME_BYTES, compress=False, heartbeat=PROTOCOL_PING_S
    )
    await ws.prepare(request)
    sockets = request.app[SOCKETS]
    sockets.add(ws)
    transport = request.transport
    socket = _Socket(ws, transport if isinstance(transport, asyncio.Transport) else None)
    session = gateway.sync.open_session(socket, admin_key=slot.admin_key)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                try:
                    await session.receive(msg.data)
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
    finally:
        await session.close()
        sockets.discard(ws)
    return ws


async def close_sync_sockets(app: web.Application) -> None:
    """``on_shutdown``: close every open sync socket (1001, going away)."""
    sockets = app[SOCKETS]
    for ws in list(sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"ServerShutdown")


def add_sync_routes(app: web.Application) -> None:
    """The sync routes, the open-socket registry and its shutdown hook."""
    app[SOCKETS] = set()
    app.router.add_get("/api/sync", sync_socket)
    app.router.add_get("/api/{version}/sync", sync_socket)
    app.on_shutdown.append(close_sync_sockets)
