"""``convex/auth.config.py``: the auth providers an app trusts, checked when it loads.

The file defines ``auth_config = {"providers": [...]}`` with each provider as Convex
writes it (convex-semantics 10): an OIDC issuer ``{"domain", "applicationID"}`` whose
keys come from its discovery document, or ``{"type": "customJwt", "issuer", "jwks",
"algorithm", "applicationID"?}``. A shape Convex would refuse stops the load with the
file named, so a typo never turns into every token being refused at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gateway.errors import AppLoadError

# What OIDC issuers sign ID tokens with in practice (Convex accepts these two).
OIDC_ALGORITHMS: Final = ("RS256", "ES256")
CUSTOM_ALGORITHMS: Final = ("RS256", "ES256")


class AuthConfigError(AppLoadError, ValueError):
    """``convex/auth.config.py`` is not a provider list Convex would accept."""


@dataclass(frozen=True)
class Provider:
    """One trusted issuer: whose tokens, for which audience, keys from where."""

    issuer: str
    application_id: str | None  # None: ``aud`` is not checked (customJwt only)
    jwks: str | None  # a URL or ``data:`` URL; None: found by OIDC discovery
    algorithms: tuple[str, ...]
    custom: bool = False

    @property
    def key_source(self) -> str:
        """Where the keys come from: the JWKS URL, or the issuer's discovery document."""
        return self.jwks if self.jwks is not None else discovery_url(self.issuer)

    def matches(self, issuer: str, audiences: list[str]) -> bool:
        """Convex's rule: ``iss`` equal to the issuer (a trailing slash aside; Auth0
        documents its domain without one and signs with one) and, when an
        application ID is set, that ID among ``aud``."""
        if issuer.rstrip("/") != self.issuer.rstrip("/"):
            return False
        return self.application_id is None or self.application_id in audiences

    def describe(self) -> str:
        if self.custom:
            return f"CustomJWT(issuer={self.issuer}, app_id={self.application_id})"
        return f"OIDC(domain={self.issuer}, app_id={self.application_id})"


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def parse_auth_config(value: Any, file: Path) -> tuple[Provider, ...]:
    """The providers of ``auth_config``; ``AuthConfigError`` naming ``file`` if malformed."""
    if not isinstance(value, Mapping) or not isinstance(value.get("providers"), list | tuple):
        raise AuthConfigError(
            f"{file}: auth_config must be a dict with a 'providers' list, "
            'e.g. {"providers": [{"domain": "https://issuer.example", "applicationID": "app"}]}'
        )
    extra = set(value) - {"providers"}
    if extra:
        raise AuthConfigError(f"{file}: auth_config has unknown keys {sorted(extra)}")
    return tuple(_provider(p, f"{file}: providers[{i}]") for i, p in enumerate(value["providers"]))


def _provider(raw: Any, where: str) -> Provider:
    if not isinstance(raw, Mapping):
        raise AuthConfigError(f"{where} must be a dict, not {type(raw).__name__}")
    if raw.get("type") == "customJwt":
        return _custom(raw, where)
    if "type" in raw:
        raise AuthConfigError(
            f"{where}: type must be 'customJwt' (or left out for an OIDC provider), "
            f"not {raw['type']!r}"
        )
    _only(raw, {"domain", "applicationID"}, where)
    return Provider(
        issuer=_url(raw, "domain", where),
        application_id=_text(raw, "applicationID", where),
        jwks=None,
        algorithms=OIDC_ALGORITHMS,
    )


def _custom(raw: Mapping[str, Any], where: str) -> Provider:
    _only(raw, {"type", "issuer", "jwks", "algorithm", "applicationID"}, where)
    algorithm = _text(raw, "algorithm", where)
    if algorithm not in CUSTOM_ALGORITHMS:
        raise AuthConfigError(
            f"{where}: algorithm must be one of {', '.join(CUSTOM_ALGORITHMS)}, not {algorithm!r}"
        )
    jwks = _text(raw, "jwks", where)
    if not jwks.startswith(("https://", "http://", "data:")):
        raise AuthConfigError(f"{where}: jwks must be an http(s) URL or a data: URL")
    app_id = raw.get("applicationID")
    if app_id is not None and (not isinstance(app_id, str) or not app_id):
        raise AuthConfigError(f"{where}: applicationID must be a non-empty string when given")
    return Provider(
        issuer=_text(raw, "issuer", where),
        application_id=app_id,
        jwks=jwks,
        algorithms=(algorithm,),
        custom=True,
    )


def _only(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = set(raw) - allowed
    if extra:
        raise AuthConfigError(
            f"{where} has unknown keys {sorted(extra)} (allowed: {', '.join(sorted(allowed))})"
        )


def _text(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise AuthConfigError(f"{where}: {key} must be a non-empty string")
    return value


def _url(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = _text(raw, key, where)
    if not value.startswith(("https://", "http://")):
        raise AuthConfigError(f"{where}: {key} must be the issuer's URL (https://...)")
    return value
