"""Reading a request body: bounded in size, in bytes at once, in time, and freed at once.

Three rules hold whatever a client sends:

- A body is at most ``MAX_BODY_BYTES`` (413 before reading when ``Content-Length``
  says more; a chunked body is cut when it grows past it).
- All bodies being read at once hold at most ``max_request_bytes_in_flight``: a body
  reserves its declared length (a chunked one grows its reservation per chunk) before
  its bytes are read, and a request that would pass the budget gets 503 ``Overloaded``
  with ``Retry-After`` without being read. The reservation is released when the body's
  block ends, parsed or failed.
- A body that stops arriving for ``request_body_timeout_s`` gets 408.

``request_body`` holds a whole body in memory (function calls); ``body_chunks`` hands
it out in pieces under the same rules, with a size limit of the caller's, for bodies
that go to disk (file uploads), and reserves only what the caller says it holds.

The buffer is one ``bytearray`` this module owns and empties when the block ends.
Emptying it is what frees a disconnected upload at once: the failed read's exception
is kept by aiohttp's stream and its traceback holds the reading frames, a cycle only a
full collection would break, so nothing may depend on that frame letting go.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final

from aiohttp import StreamReader, web
from aiohttp.web_protocol import RequestPayloadError

from gateway.http.errors import MAX_BODY_BYTES, RequestError
from gateway.http.protocol import OutpostProtocol

# What a refused client is told to wait before retrying (seconds).
RETRY_AFTER_S: Final = 1


class ClientDisconnected(ConnectionResetError):
    """The client went away before its body was read (nobody is left to answer)."""


class BodyBudget:
    """Bytes of request bodies being read at once, over every connection of a server."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.in_flight = 0

    def reserve(self, size: int) -> bool:
        if self.in_flight + size > self.limit_bytes:
            return False
        self.in_flight += size
        return True

    def release(self, size: int) -> None:
        self.in_flight -= size


@dataclass
class BodyLimits:
    """A server's body limits: the shared budget and the per-body timeout."""

    budget: BodyBudget
    timeout_s: float
    max_body_bytes: int = MAX_BODY_BYTES
    # Big JSON is parsed on a worker thread, one body at a time (see body.py).
    parse_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))


LIMITS: Final = web.AppKey("outpost_body_limits", BodyLimits)


class _Reservation:
    """The bytes one body holds in the budget; ``release`` is idempotent."""

    def __init__(self, budget: BodyBudget) -> None:
        self._budget = budget
        self.size = 0

    def grow_to(self, size: int) -> None:
        if size <= self.size:
            return
        if not self._budget.reserve(size - self.size):
            raise _overloaded(self._budget)
        self.size = size

    def release(self) -> None:
        self._budget.release(self.size)
        self.size = 0


@asynccontextmanager
async def request_body(request: web.Request) -> AsyncIterator[bytearray]:
    """The whole body, reserved in the budget until the block ends, then emptied."""
    limits = request.app[LIMITS]
    declared = request.content_length
    if declared is not None and declared > limits.max_body_bytes:
        raise _too_large(limits.max_body_bytes)
    reservation = _Reservation(limits.budget)
    buffer = bytearray()
    try:
        reservation.grow_to(declared or 0)
        await _read_into(buffer, request, reservation, limits)
        yield buffer
    finally:
        buffer.clear()  # frees the bytes whoever still holds the object
        reservation.release()


async def _read_into(
    buffer: bytearray, request: web.Request, reservation: _Reservation, limits: BodyLimits
) -> None:
    async with _waiting_on_client(request):
        await _read_chunks(buffer, request.content, reservation, limits)


@asynccontextmanager
async def _waiting_on_client(request: web.Request) -> AsyncIterator[None]:
    """Mark the connection as waiting on its client's body while the block runs."""
    protocol = request.protocol if isinstance(request.protocol, OutpostProtocol) else None
    if protocol is not None:
        protocol.body_pending(True)  # waits on its client: may give its place to another
    try:
        yield
    except RequestError as exc:
        if exc.status == 408 and protocol is not None:
            protocol.drop_unread_body()
        raise
    finally:
        if protocol is not None:
            protocol.body_pending(False)


class BodyChunks:
    """A body read piece by piece (for bodies that go to disk, not to memory): each
    piece within the body timeout, all of them within ``max_bytes``; the caller says
    with ``hold`` how many bytes it keeps in memory, and those count in the budget."""

    def __init__(
        self,
        content: StreamReader,
        reservation: _Reservation,
        timeout_s: float,
        max_bytes: int,
        too_large: Callable[[int], RequestError],
    ) -> None:
        self._content = content
        self._reservation = reservation
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._too_large = too_large
        self.received = 0

    async def next(self) -> bytes:
        """The next piece, ``b""`` at the end (408, 400 or ``ClientDisconnected`` as above)."""
        chunk = await _next_chunk(self._content, self._timeout_s)
        self.received += len(chunk)
        if self.received > self._max_bytes:
            raise self._too_large(self._max_bytes)
        return chunk

    def hold(self, size: int) -> None:
        """Reserve ``size`` bytes in the budget in place of what was held (503 past it)."""
        self._reservation.release()
        self._reservation.grow_to(size)


@asynccontextmanager
async def body_chunks(
    request: web.Request, max_bytes: int, too_large: Callable[[int], RequestError]
) -> AsyncIterator[BodyChunks]:
    """Read the body in pieces under the rules above, with its own size limit (refused
    before reading when ``Content-Length`` says more); what it held is freed at the end."""
    limits = request.app[LIMITS]
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise too_large(max_bytes)
    reservation = _Reservation(limits.budget)
    try:
        async with _waiting_on_client(request):
            yield BodyChunks(request.content, reservation, limits.timeout_s, max_bytes, too_large)
    finally:
        reservation.release()


async def _read_chunks(
    buffer: bytearray, content: StreamReader, reservation: _Reservation, limits: BodyLimits
) -> None:
    while chunk := await _next_chunk(content, limits.timeout_s):
        size = len(buffer) + len(chunk)
        if size > limits.max_body_bytes:
            raise _too_large(limits.max_body_bytes)
        reservation.grow_to(size)
        buffer += chunk


async def _next_chunk(content: StreamReader, timeout_s: float) -> bytes:
    try:
        async with asyncio.timeout(timeout_s):
            return await content.readany()
    except TimeoutError:
        raise RequestError(
            408,
            "RequestTimeout",
            f"no part of the request body arrived for {timeout_s:g} s "
            "(request_body_timeout_s); send the body without pauses",
            headers={"Connection": "close"},
        ) from None
    except ConnectionError as exc:
        # aiohttp keeps this exception in the stream: drop the frames it collected.
        exc.__traceback__ = None
        raise ClientDisconnected("the client closed the connection during the body") from None
    except RequestPayloadError as exc:
        exc.__traceback__ = None
        raise RequestError(
            400, "BadRequestBody", "the request body is malformed or shorter than declared"
        ) from None


def _too_large(limit: int) -> RequestError:
    return RequestError(
        413,
        "PayloadTooLarge",
        f"the request body is larger than the limit of {limit} bytes (16 MiB + 2000); "
        "send less data per call",
    )


def _overloaded(budget: BodyBudget) -> RequestError:
    return RequestError(
        503,
        "Overloaded",
        f"the gateway is reading {budget.in_flight} bytes of request bodies already "
        f"(max_request_bytes_in_flight = {budget.limit_bytes}); retry in "
        f"{RETRY_AFTER_S} s",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
