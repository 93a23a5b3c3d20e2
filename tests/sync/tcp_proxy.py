"""A TCP proxy for tests that cut a client's socket: between the client and a server.

It runs on the test's event loop (``async with TcpProxy(server_url) as proxy``), listens
on an ephemeral port (``proxy.url``) and forwards bytes both ways. ``cut()`` drops every
open connection at once, by reset (RST) or by an orderly close (FIN); ``cut_on(marker)``
arms a drop for the moment a server-to-client chunk holding ``marker`` passes (that
chunk is not forwarded), e.g. ``b"MutationResponse"`` for "committed, not answered".
Sync frames from a server are not masked, so their JSON is visible in the stream.

A client in the test process must not block the loop: the PyPI ``ConvexClient`` holds
the GIL while it waits, so it runs in a child process (``pip_worker.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from urllib.parse import urlsplit

CHUNK = 65536


class _Pair:
    """One proxied connection: the client's side and the server's side."""

    def __init__(self, downstream: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.writers = (downstream, upstream)
        self.dropped = False

    def drop(self, *, reset: bool) -> bool:
        """Close both sides (RST when ``reset``); False if it was already dropped."""
        if self.dropped:
            return False
        self.dropped = True
        for writer in self.writers:
            if reset:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                writer.transport.abort()
            else:
                writer.close()
        return True


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to the host and port of ``target_url``."""

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        assert parts.hostname is not None and parts.port is not None, target_url
        self.target = (parts.hostname, parts.port)
        self.scheme = parts.scheme
        self.port = 0
        self.connections = 0  # accepted so far
        self.cuts = 0  # connections dropped by cut() / cut_on()
        self._pairs: set[_Pair] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._marker: bytes | None = None
        self._marker_reset = True
        self._accepted = asyncio.Condition()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        return sum(1 for pair in self._pairs if not pair.dropped)

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening, drop what is open, and wait for every handler to end."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._marker = None
        for pair in list(self._pairs):
            pair.drop(reset=False)
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def wait_for_connections(self, count: int) -> None:
        """Return once ``count`` connections were accepted in all (bound it with a timeout)."""
        async with self._accepted:
            await self._accepted.wait_for(lambda: self.connections >= count)

    def cut(self, *, reset: bool = True) -> int:
        """Drop every open connection now; returns how many there were."""
        dropped = sum(pair.drop(reset=reset) for pair in list(self._pairs))
        self.cuts += dropped
        return dropped

    def cut_on(self, marker: bytes, *, reset: bool = True) -> None:
        """Drop the connection whose server sends ``marker`` next (once), unforwarded."""
        self._marker, self._marker_reset = marker, reset

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        async with self._accepted:
            self.connections += 1
            self._accepted.notify_all()
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.transport.abort()
                return
            pair = _Pair(writer, up_writer)
            self._pairs.add(pair)
            try:
                await asyncio.gather(
                    self._pump(reader, up_writer, pair, watch=False),
                    self._pump(up_reader, writer, pair, watch=True),
                )
            finally:
                pair.drop(reset=False)
                self._pairs.discard(pair)
                for side in pair.writers:
                    with contextlib.suppress(Exception):
                        await side.wait_closed()
        finally:
            self._handlers.discard(task)

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, pair: _Pair, *, watch: bool
    ) -> None:
        """Copy ``src`` to ``dst`` until either side ends; then end the pair."""
        tail = b""
        try:
            while not pair.dropped:
                data = await src.read(CHUNK)
                if not data or pair.dropped:
                    break
                marker = self._marker
                if watch and marker is not None:
                    if marker in tail + data:
                        self._marker = None
                        if pair.drop(reset=self._marker_reset):
                            self.cuts += 1
                        break
                    tail = data[-(len(marker) - 1) :] if len(marker) > 1 else b""
                dst.write(data)
                await dst.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            pair.drop(reset=False)
