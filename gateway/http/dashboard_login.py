"""The dashboard's login without a key in any URL: a single-use token that expires.

``outpost dashboard`` asks the running gateway (over the admin socket, or over HTTP
with the admin key) to ``POST /dashboard/login-token``; it opens
``/dashboard/#login=<token>``. A fragment is never sent to a server, so the token is
in no request line, access log or proxy log. The page ``POST``\\ s it to
``/dashboard/login`` and gets the admin key back, which it keeps in the tab's
session storage, as it would after the user typed it. A token is 256 random bits,
answers once, and dies after ``LOGIN_TOKEN_TTL_S``; whoever may mint one may already
read the key, so the exchange grants nothing new. Neither path answers CORS, so a
page of another origin cannot read the key even if it guessed a token.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Final

from aiohttp import hdrs, web

from gateway.http.admin import caller_of
from gateway.http.body import read_json_object
from gateway.http.errors import RequestError
from gateway.http.state import slot_of

LOGIN_TOKEN_TTL_S: Final = 60.0
# Unredeemed tokens kept at once; minting more drops the oldest (admin callers only).
MAX_LOGIN_TOKENS: Final = 16
_NO_STORE: Final = {hdrs.CACHE_CONTROL: "no-store"}


class LoginTokens:
    """Tokens minted for ``outpost dashboard``: each redeemable once, before it expires."""

    def __init__(
        self, ttl_s: float = LOGIN_TOKEN_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._deadlines: dict[str, float] = {}

    def mint(self) -> str:
        self._forget_expired()
        while len(self._deadlines) >= MAX_LOGIN_TOKENS:
            self._deadlines.pop(next(iter(self._deadlines)))
        token = secrets.token_urlsafe(32)
        self._deadlines[token] = self._clock() + self.ttl_s
        return token

    def redeem(self, token: str) -> bool:
        """Whether ``token`` was minted and is still fresh; it never answers again."""
        deadline = self._deadlines.pop(token, None)
        return deadline is not None and self._clock() <= deadline

    def _forget_expired(self) -> None:
        now = self._clock()
        for token in [t for t, d in self._deadlines.items() if d < now]:
            del self._deadlines[token]


LOGIN_TOKENS: Final = web.AppKey("outpost_dashboard_login_tokens", LoginTokens)


def add_login_routes(app: web.Application, prefix: str) -> None:
    app[LOGIN_TOKENS] = LoginTokens()  # one per app: the TCP port and the admin socket share it
    app.router.add_post(prefix + "login-token", post_login_token)
    app.router.add_post(prefix + "login", post_login)


def _tokens(request: web.Request) -> LoginTokens:
    return request.app[LOGIN_TOKENS]


async def post_login_token(request: web.Request) -> web.Response:
    """Admin callers only (the admin socket, or ``Authorization: Convex <key>``)."""
    slot = slot_of(request)
    if not caller_of(request, slot.admin_key).admin:
        raise RequestError(
            403,
            "Forbidden",
            "a dashboard login token is given over the admin socket or with "
            "'Authorization: Convex <admin key>'; run `outpost dashboard`",
        )
    tokens = _tokens(request)
    body = {"token": tokens.mint(), "expiresInS": tokens.ttl_s}
    return web.json_response(body, headers=_NO_STORE)


async def post_login(request: web.Request) -> web.Response:
    """``{"token"}`` -> ``{"adminKey"}``, once; 403 for an unknown, used or old token."""
    token = (await read_json_object(request)).fields.get("token")
    admin_key = slot_of(request).admin_key
    if not isinstance(token, str) or not _tokens(request).redeem(token) or admin_key is None:
        raise RequestError(
            403,
            "BadLoginToken",
            "this login link was used already or is older than "
            f"{LOGIN_TOKEN_TTL_S:.0f} s; run `outpost dashboard` again, or log in with "
            "the admin key",
        )
    return web.json_response({"adminKey": admin_key}, headers=_NO_STORE)
