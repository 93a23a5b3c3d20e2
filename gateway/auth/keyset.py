"""One provider's signing keys: fetched, cached, refetched, and kept on disk.

Rules (issue 10, section 2):

- The JWKS is served from memory while fresh (its cache headers, ``fetch``); a stale
  one is refreshed on the next token that needs it.
- A ``kid`` the cached set lacks (the issuer rotated its keys) refetches at once, but
  at most once per ``min_refetch_s``: a stream of tokens with made-up ``kid``s cannot
  make the gateway hammer the issuer.
- Offline is normal on a gateway: when the issuer cannot be reached, the last JWKS
  fetched keeps verifying tokens, and the log says so (once per failed refresh, and
  those are rate-limited too). The last JWKS is saved in the data directory (0600,
  replaced atomically), so this holds across a restart.
- One refresh at a time (a lock): a burst of tokens after a rotation shares a fetch.
- A token whose key is cached never waits on the network: a stale set is refreshed
  in the background (stale-while-revalidate), so an issuer that times out (10 s)
  slows no request. Only a token whose key is not cached waits for a fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from gateway.auth.config import Provider
from gateway.auth.fetch import Fetch, FetchError
from gateway.private_files import write_private_file

if TYPE_CHECKING:  # PyJWT is imported when an app configures a provider (verifier.py)
    import jwt

log = logging.getLogger("gateway.auth")

MIN_REFETCH_S: Final = 30.0  # between two fetches of one provider's keys, at most one


class KeysUnavailable(Exception):
    """No key could be had for a token: the message says why (for the client)."""


class KeySet:
    """The keys of one provider, as fresh as the issuer and the rate limit allow."""

    def __init__(
        self,
        provider: Provider,
        fetch: Fetch,
        saved: Path | None,
        *,
        min_refetch_s: float = MIN_REFETCH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self._fetch = fetch
        self._saved = saved  # where the last JWKS lives on disk; None: memory only
        self._min_refetch_s = min_refetch_s
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._fresh_until = float("-inf")
        self._last_fetch = float("-inf")
        self._lock = asyncio.Lock()
        self._loaded = False  # the saved JWKS was looked for
        self._background: asyncio.Task[None] | None = None
        self.fetches = 0  # fetch attempts, for tests and logs
        self._last_error = "not fetched yet"
        self._jwks_url = ""  # the JWKS URL last used (discovery names it for OIDC)

    async def keys_for(self, kid: str | None) -> list[jwt.PyJWK]:
        """The keys that may have signed a token with header ``kid`` (all of them when
        the token names none); ``KeysUnavailable`` if there are none."""
        if not self._loaded:
            async with self._lock:
                if not self._loaded:
                    self._keys = await asyncio.to_thread(self._load_saved)
                    self._loaded = True
        if self._has(kid):
            if self._clock() >= self._fresh_until:
                self._refresh_in_background()
        else:
            async with self._lock:  # a refresh under way may bring the key
                now = self._clock()
                if not self._has(kid) and now - self._last_fetch >= self._min_refetch_s:
                    await self._refresh(now)
        keys = self._keys
        if keys is None:
            raise KeysUnavailable(
                f"no keys for issuer {self.provider.issuer} yet: {self._last_error}"
            )
        if kid is None:
            return list(keys.values())
        key = keys.get(kid)
        if key is None:
            raise KeysUnavailable(
                f"no key with kid {kid!r} in the issuer's JWKS ({_short(self._jwks_url)}); "
                f"refetched at most every {self._min_refetch_s:g} s"
            )
        return [key]

    def _has(self, kid: str | None) -> bool:
        keys = self._keys
        if not keys:
            return False
        return kid is None or kid in keys

    def _refresh_in_background(self) -> None:
        if self._background is not None and not self._background.done():
            return
        if self._clock() - self._last_fetch < self._min_refetch_s:
            return
        self._background = asyncio.create_task(self._locked_refresh(), name="outpost-auth-jwks")

    async def _locked_refresh(self) -> None:
        async with self._lock:
            now = self._clock()
            if now >= self._fresh_until and now - self._last_fetch >= self._min_refetch_s:
                await self._refresh(now)

    async def settled(self) -> None:
        """Wait for a background refresh under way (tests; a clean close)."""
        task = self._background
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)

    async def close(self) -> None:
        """Cancel a background refresh; idempotent."""
        task, self._background = self._background, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _refresh(self, now: float) -> None:
        self._last_fetch = now
        self.fetches += 1
        try:
            jwks, max_age_s = await self._fetch_jwks()
            keys = _parse_jwks(jwks, self.provider)
        except (FetchError, ValueError) as exc:
            self._last_error = str(exc)
            if self._keys is not None:
                log.warning(
                    "cannot refresh the keys of issuer %s (%s); still accepting tokens "
                    "signed by the JWKS cached before",
                    self.provider.issuer,
                    exc,
                )
            return
        self._keys = keys
        self._fresh_until = now + max_age_s
        if self._saved is not None:
            await asyncio.to_thread(self._save, jwks)

    async def _fetch_jwks(self) -> tuple[dict[str, Any], float]:
        url = self.provider.jwks
        if url is None:  # OIDC: the discovery document names the JWKS
            discovery = (await self._fetch(self.provider.key_source)).document
            url = discovery.get("jwks_uri")
            if not isinstance(url, str):
                raise FetchError(f"{self.provider.key_source} names no jwks_uri")
        self._jwks_url = url
        fetched = await self._fetch(url)
        return fetched.document, fetched.max_age_s

    def _load_saved(self) -> dict[str, jwt.PyJWK] | None:
        """The JWKS saved by an earlier run: stale (refreshed when next needed) but
        good for verifying while the issuer cannot be reached."""
        if self._saved is None:
            return None
        try:
            saved = json.loads(self._saved.read_text(encoding="utf-8"))
            if saved.get("source") != self.provider.key_source:
                return None  # the config now names another issuer or URL
            keys = _parse_jwks(saved["jwks"], self.provider)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring the saved JWKS %s: %s", self._saved, exc)
            return None
        self._jwks_url = saved.get("jwks_url", "")
        log.info("loaded the saved JWKS of issuer %s from %s", self.provider.issuer, self._saved)
        return keys

    def _save(self, jwks: dict[str, Any]) -> None:
        assert self._saved is not None
        record = {"source": self.provider.key_source, "jwks_url": self._jwks_url, "jwks": jwks}
        try:
            self._saved.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_private_file(self._saved, json.dumps(record))
        except OSError as exc:  # the cache is a convenience: verifying goes on without
            log.warning("cannot save the JWKS to %s: %s", self._saved, exc)


def saved_path(directory: Path, provider: Provider) -> Path:
    """Where ``provider``'s last JWKS is kept: one file per key source."""
    digest = hashlib.sha256(provider.key_source.encode()).hexdigest()[:16]
    return directory / f"jwks-{digest}.json"


def _parse_jwks(jwks: Any, provider: Provider) -> dict[str, jwt.PyJWK]:
    """The JWKS's signing keys usable with the provider's algorithms, by ``kid``."""
    import jwt

    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError("the JWKS is not an object with a 'keys' list")
    keys: dict[str, jwt.PyJWK] = {}
    for n, raw in enumerate(jwks["keys"]):
        if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
            continue
        alg = raw.get("alg") or _default_alg(raw, provider)
        if alg not in provider.algorithms:
            continue
        try:
            key = jwt.PyJWK(raw, algorithm=alg)
        except jwt.PyJWKError:
            continue  # a key type this provider cannot use; others may do
        keys[str(raw.get("kid", f"#{n}"))] = key
    return keys


def _default_alg(raw: dict[str, Any], provider: Provider) -> str | None:
    """A key without ``alg``: RS256 for RSA, ES256 for P-256, if the provider takes it."""
    if raw.get("kty") == "RSA":
        return "RS256"
    if raw.get("kty") == "EC" and raw.get("crv") == "P-256":
        return "ES256"
    return None


def _short(url: str) -> str:
    return url if len(url) <= 80 else url[:77] + "..."
