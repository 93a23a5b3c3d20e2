"""Which ``Host`` headers the gateway answers: the defence against DNS rebinding.

A web page on a LAN user's browser can make its own host name resolve to the gateway's
address (DNS rebinding) and then talk to the gateway as a page of that name. The
``Host`` header still carries the page's name, so refusing names the gateway is not
known by stops it. Always answered: requests without a ``Host`` (HTTP/1.0 tools), IP
literals (a page cannot rebind an address), ``localhost``, this machine's host name and
``<name>.local`` (mDNS), the ``discovery_name`` it is announced under, and the host of
``site_url``. ``allowed_hosts`` adds names, comma-separated: ``.example.net`` allows
every name under ``example.net``, ``*`` turns the check off (behind a reverse proxy
that checks names itself).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from gateway.config import Settings
from gateway.http.errors import error_response
from gateway.known_names import is_address, known_names, normal

ANY: Final = "*"


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port (``[::1]:80`` -> ``::1``)."""
    header = header.strip()
    if header.startswith("["):  # an IPv6 literal
        return header[1 : header.find("]")] if "]" in header else header[1:]
    name, _, _ = header.partition(":")
    return normal(name)


class HostPolicy:
    """The names (and ``.suffixes``) a request's ``Host`` may carry."""

    def __init__(self, names: Iterable[str]) -> None:
        cleaned = {normal(n) for n in names if n.strip()}
        self.any = ANY in cleaned
        self.suffixes = tuple(n for n in cleaned if n.startswith("."))
        self.names = frozenset(n for n in cleaned if not n.startswith("."))

    @classmethod
    def from_settings(cls, settings: Settings) -> HostPolicy:
        return cls(known_names(settings))

    def allows(self, header: str | None) -> bool:
        if self.any or not header:
            return True
        name = host_name(header)
        if name in self.names or is_address(name):
            return True
        return any(name.endswith(suffix) for suffix in self.suffixes)


def host_middleware(policy: HostPolicy) -> Middleware:
    """Refuse (403, Convex's error body) a request whose ``Host`` the policy does not allow."""

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get(hdrs.HOST)
        if policy.allows(header):
            return await handler(request)
        return error_response(
            403,
            "ForbiddenHost",
            f"this gateway does not answer to the host name {host_name(header or '')!r} "
            "(a defence against DNS rebinding); add it to allowed_hosts in outpost.toml",
        )

    return check_host
