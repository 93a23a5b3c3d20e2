"""A token issuer the auth tests run: OIDC discovery and a JWKS served by aiohttp on an
ephemeral port, RSA (RS256) and EC P-256 (ES256) keys made with ``cryptography``,
rotated on demand, tokens signed with PyJWT.

Named apart from ``conftest`` so tests import it as ``from auth.auth_issuer import ...``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "outpost-tests"


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    @classmethod
    def new(cls, alg: str = "RS256") -> SigningKey:
        if alg == "RS256":
            private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            private = ec.generate_private_key(ec.SECP256R1())
        return cls(f"{alg.lower()}-{uuid.uuid4().hex[:8]}", alg, private)

    def jwk(self) -> dict[str, Any]:
        maker = RSAAlgorithm if self.alg == "RS256" else ECAlgorithm
        jwk: dict[str, Any] = maker.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


def jwks_of(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [k.jwk() for k in keys]}


def data_url(document: dict[str, Any]) -> str:
    encoded = base64.b64encode(json.dumps(document).encode()).decode()
    return f"data:application/json;base64,{encoded}"


def sign(
    key: SigningKey,
    issuer: str,
    *,
    subject: str = "user-1",
    audience: Any = AUDIENCE,
    lifetime_s: float = 3600,
    kid: str | None = "",
    **claims: Any,
) -> str:
    """A token signed by ``key``; ``kid=None`` leaves the header's kid out, ``""`` uses
    the key's own; extra ``claims`` override the defaults (``exp=...``)."""
    now = int(time.time())
    payload: dict[str, Any] = {"iss": issuer, "sub": subject, "iat": now, "exp": now + lifetime_s}
    if audience is not None:
        payload["aud"] = audience
    payload.update(claims)
    headers = {} if kid is None else {"kid": kid or key.kid}
    return jwt.encode(payload, key.private, algorithm=key.alg, headers=headers)


@dataclass
class Issuer:
    """An issuer at ``url`` (no trailing slash) serving ``keys``; counts its requests."""

    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey.new()])
    cache_control: str | None = "max-age=300"
    url: str = ""
    hits: dict[str, int] = field(default_factory=lambda: {"discovery": 0, "jwks": 0})
    _runner: web.AppRunner | None = None
    _port: int = 0

    @property
    def key(self) -> SigningKey:
        return self.keys[0]

    def sign(self, **kwargs: Any) -> str:
        return sign(self.key, self.url, **kwargs)

    def rotate(self, alg: str = "RS256") -> SigningKey:
        """A new key replaces every old one in the JWKS."""
        self.keys = [SigningKey.new(alg)]
        return self.key

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks.json", self._jwks)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)  # same port on a restart
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self._port = sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self._port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _discovery(self, request: web.Request) -> web.Response:
        self.hits["discovery"] += 1
        return web.json_response(
            {
                "issuer": self.url,
                "jwks_uri": f"{self.url}/jwks.json",
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        self.hits["jwks"] += 1
        headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
        return web.json_response(jwks_of(*self.keys), headers=headers)
