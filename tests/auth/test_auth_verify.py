"""``Authenticator``: tokens from a running test issuer, and every way one is refused."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from auth.auth_issuer import AUDIENCE, Issuer, SigningKey, data_url, jwks_of, sign

from gateway.auth import Authenticator, Provider, TokenRefused
from gateway.auth.config import OIDC_ALGORITHMS
from gateway.auth.fetch import Fetched


def oidc(issuer: Issuer, app_id: str = AUDIENCE) -> Provider:
    return Provider(issuer.url, app_id, None, OIDC_ALGORITHMS)


async def refused(auth: Authenticator, token: str) -> TokenRefused:
    with pytest.raises(TokenRefused) as caught:
        await auth.verify(token)
    return caught.value


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_oidc_rs256_and_es256_identity_shape(issuer: Issuer, tmp_path: Path) -> None:
    issuer.keys.append(SigningKey.new("ES256"))
    auth = Authenticator([oidc(issuer)], tmp_path)
    try:
        claims: dict[str, Any] = {
            "name": "Ada",
            "given_name": "Ada",
            "email": "ada@example.com",
            "email_verified": True,
            "picture": "https://p/a.png",
            "updated_at": 0,
            "nbf": int(time.time()) - 5,
            "jti": "j1",
            "org": {"id": 7},
        }
        identity = await auth.verify(issuer.sign(subject="ada", **claims))
        es256 = sign(issuer.keys[1], issuer.url, subject="bob")
        assert (await auth.verify(es256))["tokenIdentifier"] == f"{issuer.url}|bob"
    finally:
        await auth.close()
    assert dict(identity) == {
        "tokenIdentifier": f"{issuer.url}|ada",
        "subject": "ada",
        "issuer": issuer.url,
        "name": "Ada",
        "givenName": "Ada",
        "email": "ada@example.com",
        "emailVerified": True,
        "pictureUrl": "https://p/a.png",
        "updatedAt": "1970-01-01T00:00:00Z",
        "org": {"id": 7},  # OIDC: custom claims as they are (customJwt flattens)
    }
    assert identity.valid_until_s is not None and identity.valid_until_s > time.time()
    assert issuer.hits == {"discovery": 1, "jwks": 1}  # one fetch served both tokens


async def test_custom_jwt_with_data_url_jwks_flattens_claims() -> None:
    key = SigningKey.new("ES256")
    provider = Provider("https://custom.example", None, data_url(jwks_of(key)), ("ES256",), True)
    auth = Authenticator([provider])
    token = sign(key, "https://custom.example", audience=None, properties={"id": "p1"})
    identity = await auth.verify(token)
    assert identity["properties.id"] == "p1" and identity["subject"] == "user-1"
    # The provider takes ES256 only: an RS256 token with the same issuer is refused.
    rsa = SigningKey.new("RS256")
    error = await refused(auth, sign(rsa, "https://custom.example", audience=None))
    assert error.code == "Unauthenticated" and "'RS256'" in str(error)
    await auth.close()


async def test_refusals_name_the_reason(issuer: Issuer, tmp_path: Path) -> None:
    auth = Authenticator([oidc(issuer)], tmp_path)
    now = int(time.time())
    try:
        cases = {
            "not a jwt": ("InvalidAuthHeader", "Could not parse JWT payload"),
            issuer.sign(iss="https://elsewhere.example"): ("NoAuthProvider", "elsewhere"),
            issuer.sign(audience="other-app"): ("NoAuthProvider", "aud=['other-app']"),
            issuer.sign(exp=now - 3600): ("Unauthenticated", "the token expired at"),
            issuer.sign(nbf=now + 3600): ("Unauthenticated", "not valid before"),
            issuer.sign(kid="nobody"): ("Unauthenticated", "no key with kid 'nobody'"),
            sign(SigningKey.new(), issuer.url, kid=issuer.key.kid): (
                "Unauthenticated",
                "bad signature",
            ),
        }
        for token, (code, reason) in cases.items():
            error = await refused(auth, token)
            assert (error.code, reason in str(error)) == (code, True), (reason, str(error))
        # Within the leeway: a token 30 s past its exp still passes.
        assert await auth.verify(issuer.sign(exp=now - 30))
    finally:
        await auth.close()


async def test_no_providers_refuses_with_what_to_do() -> None:
    auth = Authenticator([])
    error = await refused(auth, "a.b.c")
    assert error.code == "NoAuthProvider" and "convex/auth.config.py" in str(error)
    await auth.close()


async def test_rotation_refetches_and_unknown_kids_are_rate_limited(
    issuer: Issuer, tmp_path: Path
) -> None:
    clock = Clock()
    auth = Authenticator([oidc(issuer)], tmp_path, min_refetch_s=30, clock=clock)
    try:
        await auth.verify(issuer.sign())
        assert issuer.hits["jwks"] == 1
        issuer.rotate("ES256")  # mid-test: the old key is gone, a new kid signs
        clock.now += 31
        assert (await auth.verify(issuer.sign(subject="after")))["subject"] == "after"
        assert issuer.hits["jwks"] == 2
        # Made-up kids: one refetch per 30 s at most, whatever the number of tokens.
        clock.now += 31
        for n in range(20):
            error = await refused(auth, issuer.sign(kid=f"made-up-{n}"))
            assert "no key with kid" in str(error)
        assert issuer.hits["jwks"] == 3
        clock.now += 31
        await refused(auth, issuer.sign(kid="made-up-again"))
        assert issuer.hits["jwks"] == 4
    finally:
        await auth.close()


async def test_cache_headers_decide_when_keys_are_fetched_again(
    issuer: Issuer, tmp_path: Path
) -> None:
    clock = Clock()
    issuer.cache_control = "public, max-age=100"
    auth = Authenticator([oidc(issuer)], tmp_path, min_refetch_s=1, clock=clock)
    try:
        token = issuer.sign()
        await auth.verify(token)
        clock.now += 99
        await auth.verify(token)
        assert issuer.hits["jwks"] == 1  # still fresh
        clock.now += 2
        issuer.cache_control = "no-cache"
        await auth.verify(token)  # stale: answered from cache, refreshed behind it
        await auth.settled()
        assert issuer.hits["jwks"] == 2
        clock.now += 2
        await auth.verify(token)
        await auth.settled()
        assert issuer.hits["jwks"] == 3  # no-cache: every time the rate limit allows
    finally:
        await auth.close()


async def test_offline_keeps_the_cached_keys_also_across_a_restart(
    issuer: Issuer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    issuer.cache_control = "no-cache"
    clock = Clock()
    auth = Authenticator([oidc(issuer)], tmp_path, min_refetch_s=1, clock=clock)
    token = issuer.sign()
    await auth.verify(token)
    await issuer.stop()  # the uplink is gone
    clock.now += 5
    assert (await auth.verify(token))["subject"] == "user-1"
    await auth.settled()
    assert "still accepting tokens signed by the JWKS cached before" in caplog.text
    await auth.close()
    saved = list((tmp_path / "auth").iterdir())
    assert len(saved) == 1 and saved[0].stat().st_mode & 0o777 == 0o600

    caplog.clear()
    restarted = Authenticator([oidc(issuer)], tmp_path, min_refetch_s=1)
    try:
        assert (await restarted.verify(token))["subject"] == "user-1"
        await restarted.settled()
        assert "cannot refresh the keys" in caplog.text
        error = await refused(restarted, issuer.sign(kid="unknown"))
        assert "no key with kid 'unknown'" in str(error)
    finally:
        await restarted.close()


async def test_without_cache_an_unreachable_issuer_is_said(issuer: Issuer) -> None:
    await issuer.stop()
    auth = Authenticator([oidc(issuer)])
    error = await refused(auth, issuer.sign())
    assert error.code == "Unauthenticated" and "cannot fetch" in str(error)
    await auth.close()


async def test_a_cached_key_never_waits_on_a_slow_issuer() -> None:
    key, gate, calls = SigningKey.new(), asyncio.Event(), []

    async def fetch(url: str) -> Fetched:
        calls.append(url)
        if len(calls) > 1:
            await gate.wait()  # an issuer that hangs
        return Fetched(jwks_of(key), 0.0)  # stale at once

    provider = Provider("https://slow.example", None, "https://slow.example/k", ("RS256",), True)
    auth = Authenticator([provider], fetch=fetch, min_refetch_s=0)
    token = sign(key, "https://slow.example", audience=None)
    await auth.verify(token)  # nothing cached: this one waits for the fetch
    await asyncio.wait_for(auth.verify(token), 1.0)  # stale, answered from the cache
    assert len(calls) == 2
    gate.set()
    await auth.settled()
    await auth.close()
