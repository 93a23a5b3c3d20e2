"""One push to the upstream: a batch POSTed as a mutation through the Convex HTTP API.

``POST {upstream_url}/api/mutation`` with ``{"path", "args": batch, "format": "json"}``
(``batch.py``), so an Outpost hub and a Convex deployment are reached the same way. The
answer becomes the applied seq or one of a few named errors; every network failure,
including a link that swallows packets without a reset, is ``UpstreamUnavailable``
within the timeouts: ``connect_timeout_s`` for the TCP (and TLS) handshake and
``request_timeout_s`` for the whole exchange, since a black-holing link accepts
nothing and refuses nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gzip
import json
import logging
from typing import Any

import aiohttp

from gateway.errors import OutpostError
from gateway.replication.batch import GAP_CODE, PUSH_PATH, UNAUTHORIZED_CODE

log = logging.getLogger("gateway.replication")

CONNECT_TIMEOUT_S = 10.0
# Bodies below this go plain: gzip's header and CPU are not worth it.
GZIP_MIN_BYTES = 8 * 1024
# Level 1 already takes sensor JSON to a fifth or so, at a fraction of level 6's CPU.
GZIP_LEVEL = 1
# What an upstream that cannot read a gzipped request body answers.
_REFUSED_ENCODING = (400, 415)
REQUEST_TIMEOUT_S = 60.0
# The most of an unexpected answer's text quoted in a log line.
_QUOTE_CHARS = 200


class UplinkError(OutpostError):
    """A push that did not get an acknowledgement."""


class UpstreamUnavailable(UplinkError, ConnectionError):
    """No answer: refused, reset, timed out, or an HTTP error status (retry later)."""


class ReplicationGap(UplinkError):
    """The upstream has applied up to ``applied``; the batch started past it."""

    def __init__(self, applied: int) -> None:
        super().__init__(f"the upstream has applied up to seq {applied}; re-send from there")
        self.applied = applied


class Unauthorized(UplinkError, PermissionError):
    """The upstream does not know this gateway with this key."""


class Refused(UplinkError):
    """The push mutation failed for another reason (its message, quoted)."""


class PushClient:
    """POSTs batches to ``{url}/api/mutation``; ``close`` is idempotent."""

    def __init__(
        self,
        url: str,
        *,
        path: str = PUSH_PATH,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self._endpoint = url.rstrip("/") + "/api/mutation"
        self._path = path
        self._timeout = aiohttp.ClientTimeout(
            total=request_timeout_s, connect=connect_timeout_s, sock_connect=connect_timeout_s
        )
        self._session: aiohttp.ClientSession | None = None
        self.gzip = True  # until the upstream refuses a gzipped body
        # One thread, so bodies are ready in the order the batches were cut: on a pool,
        # a later batch compressed first went first and was refused as a gap.
        self._encoder: concurrent.futures.ThreadPoolExecutor | None = None

    async def push(self, batch: dict[str, Any], changes: list[str]) -> int:
        """Send one batch (``batch.py``'s fields but ``changes``, and the changes as
        JSON texts); the upstream's applied seq, or a named ``UplinkError``."""
        # Joining and compressing a few MiB takes tens of ms on a Pi: off the loop, which
        # serves local clients meanwhile.
        if self._encoder is None:
            self._encoder = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="outpost-uplink-encoder"
            )
        loop = asyncio.get_running_loop()
        raw, packed = await loop.run_in_executor(self._encoder, self._bodies, batch, changes)
        if packed is not None and len(packed) <= len(raw) * 4 // 5:  # saves a fifth or more
            status, text = await self._post(packed, True)
            if status not in _REFUSED_ENCODING:
                return _answer(status, text)
            # An upstream that cannot read gzip request bodies: plain from now on.
            log.info("the upstream refused a gzipped batch (HTTP %d); sending plain JSON", status)
            self.gzip = False
        status, text = await self._post(raw, False)
        return _answer(status, text)

    def _bodies(self, batch: dict[str, Any], changes: list[str]) -> tuple[bytes, bytes | None]:
        """The request body, and gzipped when that is on and the body big enough."""
        raw = _encode(self._path, batch, changes)
        if self.gzip and len(raw) >= GZIP_MIN_BYTES:
            return raw, gzip.compress(raw, GZIP_LEVEL)
        return raw, None

    async def _post(self, body: bytes, gzipped: bool) -> tuple[int, str]:
        headers = {"Content-Type": "application/json"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        try:
            async with self._open().post(self._endpoint, data=body, headers=headers) as response:
                return response.status, await response.text()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnavailable(_describe(exc)) from exc

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        encoder, self._encoder = self._encoder, None
        if encoder is not None:  # a body being compressed is finished first
            await asyncio.to_thread(encoder.shutdown)


def _encode(path: str, batch: dict[str, Any], changes: list[str]) -> bytes:
    """The request body: ``{"path", "args": batch + changes, "format"}``, the changes'
    texts spliced in as they are (``outbox.py`` wrote them, each one JSON value)."""
    head = json.dumps(batch, separators=(",", ":"))
    args = f'{head[:-1]}{"," if batch else ""}"changes":[{",".join(changes)}]}}'
    return f'{{"path":{json.dumps(path)},"args":{args},"format":"json"}}'.encode()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer within the timeout (the link may be dropping packets)"
    return f"{type(exc).__name__}: {exc}"[:_QUOTE_CHARS]


def _answer(status: int, text: str) -> int:
    if status != 200:
        raise UpstreamUnavailable(f"HTTP {status}: {text[:_QUOTE_CHARS]}")
    try:
        reply = json.loads(text)
    except ValueError as exc:
        raise UpstreamUnavailable(f"not JSON: {text[:_QUOTE_CHARS]!r}") from exc
    if not isinstance(reply, dict):
        raise UpstreamUnavailable(f"not an answer: {text[:_QUOTE_CHARS]!r}")
    if reply.get("status") == "success":
        value = reply.get("value")
        if isinstance(value, dict) and isinstance(value.get("applied"), int | float):
            return int(value["applied"])
        raise Refused(f"the push answered {str(value)[:_QUOTE_CHARS]}, not {{applied}}")
    data = reply.get("errorData")
    code = data.get("code") if isinstance(data, dict) else None
    if code == GAP_CODE and isinstance(data, dict):
        return _gap(data)
    if code == UNAUTHORIZED_CODE:
        raise Unauthorized("the upstream refused this gateway's name or key")
    raise Refused(str(reply.get("errorMessage", text))[:_QUOTE_CHARS])


def _gap(data: dict[str, Any]) -> int:
    applied = data.get("applied")
    if not isinstance(applied, int | float):
        raise Refused(f"a ReplicationGap without an applied seq: {str(data)[:_QUOTE_CHARS]}")
    raise ReplicationGap(int(applied))
