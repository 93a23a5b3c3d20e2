"""A verified token's claims in the shape of Convex's ``UserIdentity``.

``tokenIdentifier`` is ``issuer|subject``; the OIDC standard claims get Convex's
camelCase names (convex-semantics 10); registered claims that only serve the check
(``aud``, ``exp``, ``iat``, ``nbf``, ``jti``) are dropped; other claims are kept, and
for a customJwt provider nested objects are flattened to dotted keys
(``{"properties": {"id": 1}}`` -> ``"properties.id"``) as Convex does.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any, Final

STANDARD_CLAIMS: Final = {
    "name": "name",
    "given_name": "givenName",
    "family_name": "familyName",
    "nickname": "nickname",
    "preferred_username": "preferredUsername",
    "profile": "profileUrl",
    "picture": "pictureUrl",
    "email": "email",
    "email_verified": "emailVerified",
    "gender": "gender",
    "birthdate": "birthday",
    "zoneinfo": "timezone",
    "locale": "language",
    "phone_number": "phoneNumber",
    "phone_number_verified": "phoneNumberVerified",
    "address": "address",
    "updated_at": "updatedAt",
}
DROPPED_CLAIMS: Final = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf", "jti"})


class Identity(dict[str, Any]):
    """The identity mapping, plus until when its token is valid (``exp`` plus the
    verifier's leeway, epoch seconds): a sync session holding it ends with
    ``AuthError`` then, as Convex's does."""

    valid_until_s: float | None = None


def identity_of(claims: Mapping[str, Any], *, flatten: bool) -> Identity:
    """Convex's identity for verified ``claims`` (``iss`` and ``sub`` present)."""
    issuer, subject = str(claims["iss"]), str(claims["sub"])
    identity = Identity(tokenIdentifier=f"{issuer}|{subject}", subject=subject, issuer=issuer)
    for claim, value in claims.items():
        if claim in DROPPED_CLAIMS or value is None:
            continue
        name = STANDARD_CLAIMS.get(claim)
        if name is not None:
            identity[name] = _standard(name, value)
        elif flatten and isinstance(value, Mapping):
            identity.update(_flatten(claim, value))
        else:
            identity[claim] = value
    return identity


def _standard(name: str, value: Any) -> Any:
    """Convex types these as strings: ``updatedAt`` (OIDC: epoch seconds) as RFC 3339,
    ``address`` (OIDC: a JSON object) as its JSON text."""
    if name == "updatedAt" and isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.datetime.fromtimestamp(value, tz=datetime.UTC)
        return moment.isoformat().replace("+00:00", "Z")
    if name == "address" and isinstance(value, Mapping):
        return json.dumps(value, separators=(",", ":"))
    return value


def _flatten(prefix: str, value: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}.{key}"
        if isinstance(item, Mapping):
            flat.update(_flatten(name, item))
        else:
            flat[name] = item
    return flat
