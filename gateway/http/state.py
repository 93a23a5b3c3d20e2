"""What the handlers share: the gateway (once it is ready) and the admin key."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from gateway.admin_key import load_or_create_admin_key
from gateway.gateway import Gateway
from gateway.http.errors import RequestError
from gateway.redact import forget_secret, register_secret


class GatewaySlot:
    """The gateway behind the API; empty while it starts (readiness says 503)."""

    def __init__(self, gateway: Gateway | None = None, *, admin_key: str | None = None) -> None:
        self.gateway: Gateway | None = None
        self.admin_key: str | None = None
        if admin_key is not None:
            self._set_key(admin_key)
        if gateway is not None:
            self.attach(gateway)

    def attach(self, gateway: Gateway) -> None:
        """Serve ``gateway`` (started: its indexes are built); reads its admin key."""
        if self.admin_key is None:
            self._set_key(load_or_create_admin_key(gateway.store.path.parent))
        self.gateway = gateway

    def _set_key(self, key: str) -> None:
        register_secret(key)  # from now on no log line or error body shows it
        self.admin_key = key

    def forget_key(self) -> None:
        """Stop redacting this slot's key (its server closed); idempotent."""
        if self.admin_key is not None:
            forget_secret(self.admin_key)
            self.admin_key = None

    def detach(self) -> None:
        """Stop serving calls (before the gateway closes); readiness turns 503."""
        self.gateway = None

    def require(self) -> Gateway:
        if self.gateway is None:
            raise RequestError(503, "NotReady", "the gateway is starting; retry shortly")
        return self.gateway


SLOT: Final = web.AppKey("outpost_gateway_slot", GatewaySlot)


def slot_of(request: web.Request) -> GatewaySlot:
    return request.app[SLOT]
