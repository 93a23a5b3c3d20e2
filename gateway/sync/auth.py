"""``Authenticate`` over the socket (wire spec 2.11): who a sync session runs as.

``None`` clears the identity; ``Admin`` needs this gateway's admin key (and may act as
an identity); ``User`` tokens go through one pluggable ``TokenVerifier``. Until JWT
validation exists (the auth issue), the default verifier refuses every user token, which
the session answers with ``AuthError`` and a close.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any


class AuthenticationError(Exception):
    """A token was refused; the message goes to the client in ``AuthError``."""


TokenVerifier = Callable[[str], Awaitable[Mapping[str, Any]]]
"""Checks a user token (a JWT) and returns the identity it proves, or raises
``AuthenticationError``."""


async def refuse_user_tokens(token: str) -> Mapping[str, Any]:
    """The verifier until user auth exists: every user token is refused."""
    raise AuthenticationError(
        "user tokens (JWT) are not accepted by this gateway yet; no auth provider is configured"
    )


@dataclass(frozen=True)
class Principal:
    """Whom a session's calls run as."""

    admin: bool = False
    identity: Mapping[str, Any] | None = None


ANONYMOUS = Principal()


def admin_principal(
    key: str, admin_key: str | None, acting_as: Mapping[str, Any] | None
) -> Principal:
    """An ``Admin`` token: the gateway's admin key, optionally impersonating someone."""
    # ``surrogatepass``: a client's JSON may carry a lone surrogate ("\\ud800"), which
    # plain UTF-8 cannot encode; such a key is simply not ours (AuthError, not a crash).
    given = key.encode("utf-8", "surrogatepass")
    if admin_key is None or not hmac.compare_digest(given, admin_key.encode()):
        raise AuthenticationError(
            "the admin key is not this gateway's; the key is in the data directory's "
            "'admin_key' file"
        )
    return Principal(admin=True, identity=dict(acting_as) if acting_as else None)
