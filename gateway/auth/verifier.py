"""Checking a user token (a JWT) against the app's providers: the identity, or why not.

The order follows Convex's backend: the token must parse (``InvalidAuthHeader``), its
``iss``/``aud`` must match a configured provider (``NoAuthProvider``), then its
signature and times must hold (``Unauthenticated``). Each refusal keeps Convex's text
and adds the precise reason in parentheses, so an app author sees what to fix.
Times: ``exp``/``nbf``/``iat`` with ``leeway_s`` of slack for clocks that drift.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from gateway.auth.config import Provider
from gateway.auth.fetch import Fetch, HttpFetcher
from gateway.auth.identity import Identity, identity_of
from gateway.auth.keyset import MIN_REFETCH_S, KeySet, KeysUnavailable, saved_path
from gateway.sync.auth import AuthenticationError

if TYPE_CHECKING:
    import jwt

log = logging.getLogger("gateway.auth")

LEEWAY_S: Final = 60.0
PARSE_TEXT: Final = (
    "Could not parse JWT payload. Check that the token is a valid JWT format with three "
    "base64-encoded parts separated by dots."
)
NO_PROVIDER_TEXT: Final = (
    "No auth provider found matching the given token. Check that your JWT's issuer and "
    "audience match one of your configured providers"
)
VERIFY_TEXT: Final = (
    "Could not verify OIDC token claim. Check that the token signature is valid and the "
    "token hasn't expired."
)


class TokenRefused(AuthenticationError):
    """A user token was refused; ``code`` is Convex's error code for the HTTP API."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Authenticator:
    """The app's auth providers and their cached keys; ``verify`` checks a token."""

    def __init__(
        self,
        providers: Sequence[Provider] = (),
        data_dir: Path | None = None,
        *,
        fetch: Fetch | None = None,
        min_refetch_s: float = MIN_REFETCH_S,
        leeway_s: float = LEEWAY_S,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http: HttpFetcher | None = None  # owned (closed) here unless injected
        if fetch is None:
            self._http = fetch = HttpFetcher()
        self._fetch = fetch
        self._dir = data_dir / "auth" if data_dir is not None else None
        self._min_refetch_s = min_refetch_s
        self.leeway_s = leeway_s
        self._wall = wall
        self._clock = clock  # the keys' cache lifetimes and refetch limit
        self._keysets: dict[Provider, KeySet] = {}
        self._retired: list[KeySet] = []
        self.configure(providers)

    @property
    def providers(self) -> tuple[Provider, ...]:
        return tuple(self._keysets)

    def configure(self, providers: Sequence[Provider]) -> None:
        """Trust ``providers`` from now on (an app reload); a provider that stays keeps
        its cached keys."""
        if providers:
            # PyJWT and cryptography cost ~50 ms and 3.5 MB: loaded here (at start or at
            # the reload that adds a provider), never by an app without auth, and never
            # by the first token on the event loop. The functions below import it again
            # locally, a dictionary lookup once it is loaded.
            import jwt  # noqa: F401
        old = self._keysets
        self._keysets = {p: old.get(p) or self._keyset(p) for p in providers}
        # A dropped provider's background refresh may still run: closed with the rest.
        self._retired += [k for p, k in old.items() if p not in self._keysets]

    def keyset(self, provider: Provider) -> KeySet:
        """The cached keys of one configured provider."""
        return self._keysets[provider]

    def _keyset(self, provider: Provider) -> KeySet:
        saved = self._saved(provider)
        return KeySet(
            provider, self._fetch, saved, min_refetch_s=self._min_refetch_s, clock=self._clock
        )

    def _saved(self, provider: Provider) -> Path | None:
        if self._dir is None or provider.key_source.startswith("data:"):
            return None  # a data: URL is its own copy
        return saved_path(self._dir, provider)

    async def verify(self, token: str) -> Identity:
        """The identity ``token`` proves; ``TokenRefused`` naming the reason."""
        if not self._keysets:
            raise TokenRefused(
                "NoAuthProvider",
                f"{NO_PROVIDER_TEXT}: []. (This app configures no auth provider: add "
                "convex/auth.config.py with auth_config = {'providers': [...]}.)",
            )
        header, claims = _unverified(token)
        issuer, audiences = claims.get("iss"), _audiences(claims.get("aud"))
        provider = self._match(issuer, audiences)
        alg = header.get("alg")
        if alg not in provider.algorithms:
            raise _unverified_claim(
                f"the token is signed with {alg!r}; {provider.describe()} accepts "
                f"{', '.join(provider.algorithms)}"
            )
        kid = header.get("kid")
        try:
            keys = await self._keysets[provider].keys_for(kid if isinstance(kid, str) else None)
        except KeysUnavailable as exc:
            raise _unverified_claim(str(exc)) from None
        verified = self._check(token, keys, str(alg), provider, str(issuer))
        identity = identity_of(verified, flatten=provider.custom)
        identity.valid_until_s = float(verified["exp"]) + self.leeway_s
        return identity

    def _match(self, issuer: Any, audiences: list[str]) -> Provider:
        if isinstance(issuer, str):
            for provider in self._keysets:
                if provider.matches(issuer, audiences):
                    return provider
        listed = ", ".join(p.describe() for p in self._keysets)
        raise TokenRefused(
            "NoAuthProvider",
            f"{NO_PROVIDER_TEXT}: [{listed}]. (The token has iss={issuer!r}, aud={audiences!r}.)",
        )

    def _check(
        self, token: str, keys: list[jwt.PyJWK], alg: str, provider: Provider, issuer: str
    ) -> dict[str, Any]:
        import jwt

        error: jwt.PyJWTError | None = None
        for key in keys:
            try:
                return self._decode(token, key, alg, provider, issuer)
            except jwt.InvalidSignatureError as exc:
                error = exc  # another key of the set may have signed it
            except jwt.PyJWTError as exc:
                raise _unverified_claim(self._reason(exc, token)) from None
        raise _unverified_claim(
            f"bad signature: not signed by {'any key' if len(keys) != 1 else 'the key'} "
            f"of the issuer's JWKS ({error or 'no usable key'})"
        )

    def _decode(
        self, token: str, key: jwt.PyJWK, alg: str, provider: Provider, issuer: str
    ) -> dict[str, Any]:
        import jwt

        # ``iss`` was matched (trailing slash aside) already; PyJWT checks the rest.
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=provider.application_id,
            issuer=issuer,
            leeway=self.leeway_s,
            options={
                "require": ["exp", "iss", "sub"],
                "verify_aud": provider.application_id is not None,
            },
        )
        return claims

    def _reason(self, exc: jwt.PyJWTError, token: str) -> str:
        import jwt

        claims = _unverified(token)[1]
        now = self._wall()
        if isinstance(exc, jwt.ExpiredSignatureError):
            exp = float(claims["exp"])
            return f"the token expired at {_when(exp)}, {now - exp:.0f} s ago"
        if isinstance(exc, jwt.ImmatureSignatureError):
            start = float(claims.get("nbf", claims.get("iat", now)))
            return f"the token is not valid before {_when(start)}, {start - now:.0f} s from now"
        if isinstance(exc, jwt.MissingRequiredClaimError):
            return f"the token has no '{exc.claim}' claim"
        if isinstance(exc, jwt.InvalidAudienceError):
            return f"the token's aud is not the provider's applicationID ({exc})"
        return f"{type(exc).__name__}: {exc}"

    async def settled(self) -> None:
        """Wait until no background key refresh is under way (for tests)."""
        for keyset in list(self._keysets.values()):
            await keyset.settled()

    async def close(self) -> None:
        """Stop background refreshes, close the HTTP client; idempotent."""
        for keyset in [*self._keysets.values(), *self._retired]:
            await keyset.close()
        self._retired = []
        if self._http is not None:
            await self._http.close()


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    import jwt

    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TokenRefused("InvalidAuthHeader", f"{PARSE_TEXT} ({exc})") from None
    return header, claims


def _audiences(aud: Any) -> list[str]:
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list):
        return [a for a in aud if isinstance(a, str)]
    return []


def _unverified_claim(reason: str) -> TokenRefused:
    return TokenRefused("Unauthenticated", f"{VERIFY_TEXT} ({reason})")


def _when(epoch_s: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch_s, tz=datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
