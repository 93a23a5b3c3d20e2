"""The Convex HTTP API (wire spec 1): function calls, health, stored files."""

from gateway.admin_key import ADMIN_KEY_FILENAME, load_or_create_admin_key
from gateway.http.app import build_app
from gateway.http.errors import MAX_BODY_BYTES
from gateway.http.server import HttpServer
from gateway.http.state import SLOT, GatewaySlot

__all__ = [
    "ADMIN_KEY_FILENAME",
    "MAX_BODY_BYTES",
    "SLOT",
    "GatewaySlot",
    "HttpServer",
    "build_app",
    "load_or_create_admin_key",
]
