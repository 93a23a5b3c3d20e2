"""The aiohttp application: routes, middlewares and limits, set deliberately.

aiohttp's defaults do not fit Convex's wire protocol (DESIGN decision 8): bodies up
to 16 MiB + 2000 bytes, ``//api/...`` folded before routing, CORS on everything.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from gateway.config import Settings
from gateway.gateway import Gateway
from gateway.http import functions
from gateway.http.admin import caller_of
from gateway.http.cors import add_cors_headers, preflight_middleware
from gateway.http.dashboard import add_dashboard_routes
from gateway.http.errors import MAX_BODY_BYTES, RequestError, error_middleware
from gateway.http.hosts import HostPolicy, host_middleware
from gateway.http.routing import fold_repeated_slashes
from gateway.http.state import SLOT, GatewaySlot, slot_of
from gateway.http.storage import get_stored_file
from gateway.http.storage_upload import post_upload
from gateway.http.upload import LIMITS, BodyBudget, BodyLimits
from gateway.metrics import CONTENT_TYPE, Source, collect, render, sync_socket_metrics
from gateway.sync.websocket import SOCKETS, add_sync_routes

# Peers /metrics answers without the admin key: this machine (a scraper beside the
# gateway, or an SSH tunnel); from the LAN it takes ``Authorization: Convex <admin key>``.
_LOCAL_PEERS = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})

# What /metrics reads besides the gateway: sources their owners register (the server's
# connections, the MQTT bridge), set at build time so that adding one needs no new key.
METRIC_SOURCES = web.AppKey("outpost_metric_sources", list[Source])


def build_app(
    gateway: Gateway | None = None,
    *,
    admin_key: str | None = None,
    settings: Settings | None = None,
) -> web.Application:
    """The HTTP API for ``gateway`` (None: attach it later through the ``SLOT``)."""
    settings = settings or Settings()
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[
            host_middleware(HostPolicy.from_settings(settings)),
            preflight_middleware,
            error_middleware,
        ],
    )
    app[SLOT] = GatewaySlot(gateway, admin_key=admin_key)
    app[METRIC_SOURCES] = []
    app[LIMITS] = BodyLimits(
        BodyBudget(settings.max_request_bytes_in_flight), settings.request_body_timeout_s
    )
    app.on_response_prepare.append(add_cors_headers)
    _add_routes(app.router)
    add_dashboard_routes(app)
    add_sync_routes(app, shutdown_timeout_s=settings.shutdown_timeout_s)  # before the fold
    fold_repeated_slashes(app.router)  # last: it re-resolves against everything above
    return app


def _add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/health", get_health)
    router.add_get("/health/ready", get_ready)
    router.add_get("/metrics", get_metrics)
    router.add_post("/api/query", functions.post_query)
    router.add_get("/api/query", functions.get_query, allow_head=False)
    router.add_post("/api/mutation", functions.post_mutation)
    router.add_post("/api/action", functions.post_action)
    router.add_post("/api/function", functions.post_function)
    router.add_post("/api/run/{path:.+}", functions.post_run)
    router.add_post("/api/query_ts", functions.post_query_ts)
    router.add_post("/api/query_at_ts", functions.post_query_at_ts)
    router.add_post("/api/storage/upload", post_upload)
    router.add_get("/api/storage/{id}", get_stored_file)


async def get_health(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def get_metrics(request: web.Request) -> web.Response:
    """The gateway's counters, Prometheus text format: local peers, or the admin key."""
    slot = slot_of(request)
    caller = caller_of(request, slot.admin_key)  # a wrong key is refused even locally
    # A request with an Origin comes from a page in a browser, even one on this machine.
    local = request.remote in _LOCAL_PEERS and hdrs.ORIGIN not in request.headers
    if not caller.admin and not local:
        raise RequestError(
            403,
            "Forbidden",
            "/metrics answers this machine (not a page in a browser), or a request with "
            "'Authorization: Convex <admin key>'",
        )
    if slot.gateway is None:
        raise RequestError(503, "NotReady", "the gateway is starting")
    families = collect(slot.gateway) + sync_socket_metrics(len(request.app[SOCKETS]))
    for source in request.app[METRIC_SOURCES]:
        families += source()
    body = render(families)
    return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE})


async def get_ready(request: web.Request) -> web.Response:
    """Readiness: 200 once the gateway started (its indexes built), else 503. ``disk``
    says ``"full"`` while writes are refused for a full disk: still ready, since reads
    and live queries are served and a restart would free nothing (docs/disk-full.md)."""
    gateway = slot_of(request).gateway
    if gateway is not None:
        disk = "full" if gateway.store.disk.full else "ok"
        return web.json_response({"status": "ready", "disk": disk})
    return web.json_response(
        {"code": "NotReady", "message": "the gateway is starting (building indexes)"},
        status=503,
    )
