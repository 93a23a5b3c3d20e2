"""The admin key: generated once into the data directory, checked on every request.

The key is a secret (DESIGN decision 9): it lives in ``<data_dir>/admin_key`` with
mode 0600, is read by the local CLI from there, and is never logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from gateway.admin_key import ADMIN_KEY_FILENAME
from gateway.http.errors import RequestError
from gateway.sync.auth import AuthenticationError, TokenVerifier

log = logging.getLogger("gateway.http")


@dataclass(frozen=True)
class Caller:
    """Who is calling: an admin (may run internal functions) and/or a user identity."""

    admin: bool = False
    identity: Mapping[str, Any] | None = None


ANONYMOUS: Final = Caller()
LOCAL_ADMIN: Final = Caller(admin=True)


def on_admin_socket(request: web.Request) -> bool:
    """Whether ``request`` came over a UNIX socket: the API listens on one only, the
    data directory's admin socket (``gateway.admin_socket``), whose 0600 mode admits
    this user and root alone. A TCP connection, even from this machine, never is."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    return sock is not None and sock.family == socket.AF_UNIX


def caller_of(request: web.Request, admin_key: str | None) -> Caller:
    """Read ``Authorization`` (or ``?adminKey=``): 401/403 for a bad header or key. A
    request with neither is anonymous, except on the admin socket: an admin there."""
    header = request.headers.get("Authorization")
    if header is None:
        query_key = request.query.get("adminKey")
        if query_key is not None:
            return _admin(query_key, admin_key)
        return LOCAL_ADMIN if on_admin_socket(request) else ANONYMOUS
    scheme, _, credentials = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        # A user token: ``verified_caller`` checks it (it needs to await the issuer's
        # keys); here the caller is who the header alone proves, nobody.
        return ANONYMOUS
    if scheme == "convex":
        return _admin(credentials.strip(), admin_key)
    raise RequestError(
        401,
        "InvalidAuthHeader",
        "the Authorization header must be 'Bearer <token>' or 'Convex <admin key>'",
    )


async def verified_caller(
    request: web.Request, admin_key: str | None, verify: TokenVerifier
) -> Caller:
    """``caller_of`` with a ``Bearer`` token verified: 401 ``{code, message}`` as Convex
    answers a bad one (``InvalidAuthHeader``, ``NoAuthProvider``, ``Unauthenticated``)."""
    header = request.headers.get("Authorization")
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return caller_of(request, admin_key)
    token = token.strip()
    if not token:
        raise RequestError(401, "InvalidAuthHeader", "Header must begin with `bearer `")
    try:
        identity = await verify(token)
    except AuthenticationError as exc:
        raise RequestError(401, getattr(exc, "code", "Unauthenticated"), str(exc)) from None
    return Caller(identity=identity)


def _admin(credentials: str, admin_key: str | None) -> Caller:
    key, _, acting_as = credentials.partition(":")
    # aiohttp decodes header bytes that are not UTF-8 as surrogates; they encode back
    # to the bytes sent (and never match a key), instead of raising.
    sent = key.encode("utf-8", "surrogateescape")
    if admin_key is None or not hmac.compare_digest(sent, admin_key.encode()):
        raise RequestError(
            403,
            "BadAdminKey",
            "the admin key is not this gateway's; the key is in the data directory's "
            f"'{ADMIN_KEY_FILENAME}' file",
        )
    return Caller(admin=True, identity=_acting_as(acting_as) if acting_as else None)


def _acting_as(encoded: str) -> Mapping[str, Any]:
    """npm ``setAdminAuth(key, actingAs)``: base64 of the identity's JSON."""
    try:
        identity = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        identity = None
    if not isinstance(identity, dict):
        raise RequestError(
            401,
            "InvalidAuthHeader",
            "the admin header's acting-as part must be base64 of a JSON object "
            "(Convex <key>:<base64 identity>)",
        )
    return identity
