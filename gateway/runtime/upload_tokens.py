"""Upload tokens: what ``ctx.storage.generate_upload_url`` hands out, one upload each.

Kept in memory, not in the store, on purpose:

- Single use needs a mark that flips atomically with the upload. In memory the mark is
  a dict entry on the event loop (claimed before the body is read, so two POSTs of one
  URL cannot both store a file); in the store it would cost a write per generated URL
  (most of them from mutations on the hot path) and a table to hide and expire.
- A restart forgets every outstanding token: a POST after it is refused as unknown or
  expired and the client asks for a new URL (it calls the mutation again). Convex
  signs its tokens, so they would survive a restart for their hour; here a restart
  costs one retried upload, and a used token can never come back to life.
- Time is ``time.monotonic``: a Pi without a real-time clock jumps its wall clock when
  NTP arrives, which must neither expire every token nor extend them.

A token whose upload fails (the client left, a timeout, too large) is released and may
be used again until it expires: the browser retries the same URL.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from gateway.errors import OutpostError

UPLOAD_URL_TTL_S: Final = 3600.0
"""How long an upload URL is valid: Convex's one hour."""

MAX_OUTSTANDING_TOKENS: Final = 100_000
"""Tokens remembered at once (~200 B each): past it the oldest are forgotten."""


class UploadTokenError(OutpostError, PermissionError):
    """An upload URL that cannot be used (unknown, expired, used, or in use)."""


@dataclass
class _Token:
    issued_s: float
    used: bool = False


class UploadTokens:
    """Issues tokens and lets each one carry exactly one successful upload."""

    def __init__(
        self,
        ttl_s: float = UPLOAD_URL_TTL_S,
        max_tokens: int = MAX_OUTSTANDING_TOKENS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self._max_tokens = max_tokens
        self._clock = clock
        self._tokens: dict[str, _Token] = {}  # open or used; oldest first
        self._claimed: dict[str, _Token] = {}  # uploads in progress

    def __len__(self) -> int:
        return len(self._tokens) + len(self._claimed)

    def issue(self) -> str:
        """A new token, valid for ``ttl_s``."""
        self._forget_old()
        token = secrets.token_urlsafe(24)
        self._tokens[token] = _Token(self._clock())
        return token

    def claim(self, token: str) -> None:
        """Reserve ``token`` for the upload starting now (``UploadTokenError`` if it can't be)."""
        if token in self._claimed:
            raise UploadTokenError("an upload to this URL is in progress; wait for it to finish")
        entry = self._tokens.get(token)
        if entry is None or self._expired(entry):
            raise UploadTokenError(
                "the upload URL is unknown or has expired (valid for "
                f"{self.ttl_s:g} s, and not across a gateway restart); "
                "generate a new one with ctx.storage.generate_upload_url()"
            )
        if entry.used:
            raise UploadTokenError(
                "the upload URL was already used (each one stores one file); "
                "generate a new one with ctx.storage.generate_upload_url()"
            )
        self._claimed[token] = self._tokens.pop(token)

    def complete(self, token: str) -> None:
        """The claimed upload stored its file: the token is spent (kept until it would
        have expired, so that another POST is told it was used)."""
        entry = self._claimed.pop(token, None)
        if entry is not None:
            entry.used = True
            self._tokens[token] = entry

    def release(self, token: str) -> None:
        """The claimed upload failed: the token may be used again until it expires."""
        entry = self._claimed.pop(token, None)
        if entry is not None:
            self._tokens[token] = entry

    def _expired(self, entry: _Token) -> bool:
        return self._clock() - entry.issued_s > self.ttl_s

    def _forget_old(self) -> None:
        # Oldest first (a released or used token goes back at the end: close enough),
        # stopping at the first one still valid unless the table is full.
        while self._tokens:
            token, entry = next(iter(self._tokens.items()))
            if len(self) < self._max_tokens and not self._expired(entry):
                return
            del self._tokens[token]
