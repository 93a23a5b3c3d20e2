"""A TCP proxy between an edge and its hub that can black-hole the link.

``async with LinkProxy(port) as proxy`` listens on an ephemeral loopback port
(``proxy.url``) and forwards each connection to ``127.0.0.1:port``. While
``black_hole`` is on, it behaves like a link that drops packets: connections are still
accepted and held open, every byte either way is swallowed, and nothing is ever
refused, reset or closed by the proxy (no RST, no FIN), so only the client's own
timeouts can tell. Connections opened during a black hole stay dead after it ends
(their packets are gone); new ones pass again.

``drop_syns()`` goes further: the proxy stops accepting and holds its port with a
listening socket whose accept queue is full, so the kernel drops a new connection's
SYN and the client's connect hangs (the way a dead route looks); ``accept_again()``
ends it. Connections already open go on (swallowed, under ``black_hole``).

``response_delay_s`` holds each chunk from the hub for that long before passing it on
(paces a drain so a test's poll sees each batch land). A connection accepted while the
hub is down is reset at once (``refused`` counts them), as a closed port would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

CHUNK = 65536


class LinkProxy:
    """Forwards ``127.0.0.1:<ephemeral>`` to ``127.0.0.1:target_port``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.black_hole = False
        self.response_delay_s = 0.0
        self.held = 0  # connections accepted during a black hole
        self.abandoned = 0  # of those, closed by the client (its timeout)
        self.refused = 0  # connections reset because the hub was down
        self._server: asyncio.Server | None = None
        self._full_queue: list[socket.socket] = []  # under drop_syns: listener, its filler
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> LinkProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def drop_syns(self) -> None:
        """Stop accepting: the port's accept queue is held full, so connects hang."""
        assert self._server is not None
        self._server.close()  # the listening socket only: open connections stay
        self._server = None
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(0)  # room for one connection waiting to be accepted: ...
        self._full_queue = [listener, socket.create_connection(("127.0.0.1", self.port), 1)]
        # ... that one, never accepted; the kernel drops every SYN after it.

    async def accept_again(self) -> None:
        """End ``drop_syns``: listen on the same port and forward again."""
        self._close_full_queue()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    def _close_full_queue(self) -> None:
        for sock in self._full_queue:
            sock.close()
        self._full_queue = []

    async def close(self) -> None:
        """Stop listening, close every connection, and wait for the handlers."""
        self._close_full_queue()
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            if self.black_hole:
                self.held += 1
                await _swallow(reader)
                self.abandoned += 1
                return
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                self.refused += 1
                writer.transport.abort()
                return
            self._writers.add(up_writer)
            try:
                await asyncio.gather(
                    self._pump(reader, up_writer, delay=False),
                    self._pump(up_reader, writer, delay=True),
                )
            finally:
                self._writers.discard(up_writer)
                up_writer.transport.abort()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
            self._handlers.discard(task)

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, delay: bool
    ) -> None:
        """Copy ``src`` to ``dst`` until ``src`` ends; once a black hole starts, swallow."""
        with contextlib.suppress(OSError, ConnectionError):
            while data := await src.read(CHUNK):
                if delay and self.response_delay_s:
                    await asyncio.sleep(self.response_delay_s)
                if self.black_hole:
                    await _swallow(src)  # this connection is dead for good
                    return
                dst.write(data)
                await dst.drain()
        if not self.black_hole:
            dst.transport.abort()  # the other side ended: so does this one (the client retries)


async def _swallow(reader: asyncio.StreamReader) -> None:
    """Read and drop everything until the peer gives up (closes its end)."""
    with contextlib.suppress(OSError, ConnectionError):
        while await reader.read(CHUNK):
            pass
