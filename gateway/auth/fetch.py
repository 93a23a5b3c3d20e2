"""Getting a JSON document (discovery, JWKS) and how long it may be cached.

HTTP goes through aiohttp's client (already a dependency); a ``data:`` URL, which a
customJwt provider may give as its ``jwks``, is decoded in place and never expires.
The lifetime follows the response's cache headers (RFC 9111 5.2.2.1 ``max-age``,
``no-cache``/``no-store`` as 0, else ``Expires`` minus ``Date``), clamped to
``[0, MAX_CACHE_S]``; a response without them is kept ``DEFAULT_CACHE_S``.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

DEFAULT_CACHE_S: Final = 600.0
MAX_CACHE_S: Final = 86_400.0
FETCH_TIMEOUT_S: Final = 10.0
MAX_DOCUMENT_BYTES: Final = 1024 * 1024  # a JWKS is a few kB; a bigger answer is wrong


class FetchError(Exception):
    """The document could not be had: unreachable, a non-200 answer, not JSON."""


@dataclass(frozen=True)
class Fetched:
    document: dict[str, Any]
    max_age_s: float


Fetch = Callable[[str], Awaitable[Fetched]]


class HttpFetcher:
    """Fetches JSON documents over one lazily created client session."""

    def __init__(self, timeout_s: float = FETCH_TIMEOUT_S) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, url: str) -> Fetched:
        if url.startswith("data:"):
            return Fetched(_json(decode_data_url(url), url), MAX_CACHE_S)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.get(url, headers={"Accept": "application/json"}) as resp:
                body = await resp.content.read(MAX_DOCUMENT_BYTES + 1)
                if resp.status != 200:
                    raise FetchError(f"{url} answered HTTP {resp.status}")
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise FetchError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
                return Fetched(_json(body, url), cache_lifetime_s(resp.headers))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise FetchError(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        """Close the client session; idempotent."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def cache_lifetime_s(headers: Mapping[str, str]) -> float:
    """Seconds a response may be served from cache, from its cache headers."""
    control = headers.get("Cache-Control", "")
    for directive in (d.strip().lower() for d in control.split(",")):
        if directive in ("no-cache", "no-store"):
            return 0.0
        if directive.startswith("max-age="):
            try:
                return _clamp(float(directive.partition("=")[2].strip('"')))
            except ValueError:
                return 0.0  # RFC 9111 4.2.1: an invalid freshness lifetime is stale
    expires = headers.get("Expires")
    if expires is not None:
        try:
            until = email.utils.parsedate_to_datetime(expires).timestamp()
            date = headers.get("Date")
            now = email.utils.parsedate_to_datetime(date).timestamp() if date else None
        except (TypeError, ValueError):
            return 0.0
        if now is not None:
            return _clamp(until - now)
    return DEFAULT_CACHE_S


def decode_data_url(url: str) -> bytes:
    """The bytes of a ``data:[<type>][;base64],<data>`` URL (RFC 2397)."""
    header, comma, data = url[len("data:") :].partition(",")
    if not comma:
        raise FetchError("a data: URL needs a ',' before its data")
    if header.lower().endswith(";base64"):
        try:
            return base64.b64decode(urllib.parse.unquote(data), validate=False)
        except (binascii.Error, ValueError) as exc:
            raise FetchError(f"the data: URL's base64 does not decode: {exc}") from exc
    return urllib.parse.unquote_to_bytes(data)


def _json(body: bytes, url: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise FetchError(f"{_short(url)} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise FetchError(f"{_short(url)} is not a JSON object")
    return document


def _short(url: str) -> str:
    return url if len(url) <= 80 else url[:77] + "..."


def _clamp(seconds: float) -> float:
    return min(max(seconds, 0.0), MAX_CACHE_S)
