"""Opaque pagination cursors, bound to the query they were made for.

A cursor names a position in a query's index order: "after this index key" or "at the
end". Like Convex's, it is opaque and tied to one query: the MAC covers the query's
fingerprint, which the cursor itself does not carry, so a cursor replayed against any
other query (or altered, or made with another secret) is refused with ``InvalidCursor``.

Layout (before unpadded URL-safe base64)::

    version (1 byte) | kind (1 byte: 1 = after position, 2 = end) | position | mac (16 bytes)

with ``mac = HMAC-SHA256(secret, domain | len(fingerprint) | fingerprint | version | kind |
position)[:16]``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from gateway.errors import ConfigError, InvalidCursorError
from gateway.runtime.index_range import KeyRange

__all__ = [
    "CURSOR_VERSION",
    "MIN_SECRET_BYTES",
    "CursorCodec",
    "query_fingerprint",
]

CURSOR_VERSION = 1
MIN_SECRET_BYTES = 16
_MAC_BYTES = 16
_KIND_AFTER = 1
_KIND_END = 2
_HEADER_BYTES = 2
_DOMAIN = b"outpost/cursor\x00"

_MALFORMED = (
    "InvalidCursor: this is not a pagination cursor issued by this server (it is "
    "malformed); start from cursor null"
)
_FOREIGN = (
    "InvalidCursor: this cursor was made for a different query (or was altered); "
    "start from cursor null"
)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    if not text or not text.isascii() or "=" in text or len(text) % 4 == 1:
        return None
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    # Only the canonical spelling is accepted (no stray bits in the last character).
    return data if _b64encode(data) == text else None


class CursorCodec:
    """Makes and checks cursors with a server secret (at least 16 random bytes)."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes | bytearray) or len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"The cursor secret must be at least {MIN_SECRET_BYTES} random bytes")
        self._secret = bytes(secret)

    def _mac(self, query_fingerprint: str, body: bytes) -> bytes:
        fingerprint = query_fingerprint.encode("utf-8")
        message = _DOMAIN + len(fingerprint).to_bytes(4, "big") + fingerprint + body
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, query_fingerprint: str, position: bytes | None) -> str:
        """A cursor for ``position`` (the index key of the last row returned; ``None`` =
        the end of the query's results)."""
        if position is None:
            body = bytes((CURSOR_VERSION, _KIND_END))
        else:
            body = bytes((CURSOR_VERSION, _KIND_AFTER)) + bytes(position)
        return _b64encode(body + self._mac(query_fingerprint, body))

    def decode(self, cursor: str, query_fingerprint: str) -> bytes | None:
        """The position in ``cursor`` (``None`` = end), if it was made for this query.

        Raises :class:`InvalidCursorError` when the cursor is malformed, altered, made
        with another secret, or made for another query.
        """
        if not isinstance(cursor, str):
            raise InvalidCursorError(_MALFORMED)
        data = _b64decode(cursor)
        if data is None or len(data) < _HEADER_BYTES + _MAC_BYTES:
            raise InvalidCursorError(_MALFORMED)
        body, mac = data[:-_MAC_BYTES], data[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(query_fingerprint, body)):
            raise InvalidCursorError(_FOREIGN)
        version, kind, position = body[0], body[1], body[_HEADER_BYTES:]
        if version != CURSOR_VERSION:
            raise InvalidCursorError(_MALFORMED)
        if kind == _KIND_END and not position:
            return None
        if kind == _KIND_AFTER:
            return position
        raise InvalidCursorError(_MALFORMED)


def query_fingerprint(
    table: str,
    index: str,
    range: KeyRange,
    order: str,
    filter_repr: str,
    *,
    index_fields: tuple[str, ...] = (),
) -> str:
    """A stable SHA-256 hex digest of a query's canonical form.

    ``index_fields`` (the index's effective key) is worth passing: like Convex's
    fingerprint, it makes cursors stop matching when the index is redefined.
    """
    canonical = json.dumps(
        {
            "v": 1,
            "table": table,
            "index": index,
            "indexFields": list(index_fields),
            "start": range.start.hex(),
            "end": None if range.end is None else range.end.hex(),
            "order": order,
            "filters": filter_repr,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


# --- journals (reactive pagination, wire spec 2.6) -----------------------------------

_JOURNAL_PREFIX = "outpost-journal-1:"


def journal_for(end_cursor: str) -> str:
    """The journal of a query run whose ``paginate`` ended at ``end_cursor``.

    Opaque to clients. The cursor inside is already MAC-bound to its query, so a journal
    replayed elsewhere is simply ignored (``pinned_end`` keeps nothing from it).
    """
    return _JOURNAL_PREFIX + end_cursor


def pinned_end(journal: str | None) -> str | None:
    """The end cursor pinned in ``journal`` (``None``: nothing pinned or not ours)."""
    if journal is None or not journal.startswith(_JOURNAL_PREFIX):
        return None
    return journal[len(_JOURNAL_PREFIX) :] or None
