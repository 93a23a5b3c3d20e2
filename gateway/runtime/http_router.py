"""The app author's HTTP actions: ``http = http_router()`` in ``convex/http.py``.

``@http.route(path="/x", method="POST")`` (or ``path_prefix="/files/"``) over an
``@http_action`` handler ``async def handler(ctx, request)`` routes requests to the
site port. Every declaration is checked when it is made, as Convex checks them at
definition time, and a refusal is an ``HttpRouteError`` (an ``AppLoadError``) whose
message starts with the ``file:line`` of the call. ``lookup`` is Convex's rule: the
exact path for the method first, else the longest prefix for it; HEAD is GET.

This module only declares and matches; serving lives in ``gateway.http.actions``
(the runtime never imports the HTTP layer).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn

from gateway.errors import HttpRouteError
from gateway.runtime.declared import declared_at

# Convex's routable methods; HEAD is answered by the GET route (body stripped).
METHODS: Final = ("GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
# Convex keeps /.files/ for itself (its storage URLs on the site origin).
RESERVED_PREFIX: Final = "/.files/"

HttpHandler = Callable[[Any, Any], Awaitable[Any]]


@dataclass(frozen=True)
class HttpAction:
    """An ``@http_action`` handler: ``async def handler(ctx, request) -> web.Response``."""

    handler: HttpHandler
    where: str

    @property
    def name(self) -> str:
        return getattr(self.handler, "__name__", "handler")

    async def __call__(self, ctx: Any, request: Any) -> Any:
        # Calling the decorated object directly runs the bare handler (as a helper).
        return await self.handler(ctx, request)


def http_action(handler: HttpHandler) -> HttpAction:
    """Declare an HTTP action; route it with ``@http.route(...)`` above this decorator."""
    if not inspect.iscoroutinefunction(handler):
        name = getattr(handler, "__name__", "handler")
        _refuse(
            declared_at(__file__),
            f"@http_action decorates an async function: write `async def {name}(ctx, request)`",
        )
    return HttpAction(handler, declared_at(__file__))


@dataclass(frozen=True)
class HttpRoute:
    """``method`` requests to ``path`` (exact) or under ``prefix`` run ``action``."""

    method: str
    path: str
    prefix: bool
    action: HttpAction
    where: str  # file:line of the route declaration

    @property
    def label(self) -> str:
        """How logs and errors name this route: ``POST /x`` or ``GET /files/*``."""
        return f"{self.method} {self.path}{'*' if self.prefix else ''}"


@dataclass
class HttpRouter:
    """The routes an app declares; ``lookup`` finds the one a request runs."""

    routes: list[HttpRoute] = field(default_factory=list)
    _exact: dict[tuple[str, str], HttpRoute] = field(default_factory=dict)
    # Prefix routes, longest first: the first that matches is the longest.
    _prefixes: list[HttpRoute] = field(default_factory=list)

    def route(
        self,
        *,
        method: str,
        path: str | None = None,
        path_prefix: str | None = None,
        handler: HttpAction | None = None,
    ) -> Callable[[HttpAction], HttpAction]:
        """Route ``method`` on ``path`` (exact) or ``path_prefix`` to the decorated action.

        ``handler=`` routes an action without decorating (Convex's object form)."""
        where = declared_at(__file__)
        upper = _method(method, where)
        text, prefix = _path(path, path_prefix, where)
        if (upper, text, prefix) in {(r.method, r.path, r.prefix) for r in self.routes}:
            kind = "path_prefix" if prefix else "path"
            _refuse(where, f"{upper} {kind}={text!r} is routed twice; a route is declared once")

        def add(action: HttpAction) -> HttpAction:
            if not isinstance(action, HttpAction):
                _refuse(
                    where,
                    f"the route's handler is a {type(action).__name__}; decorate "
                    "`async def handler(ctx, request)` with @http_action under @http.route",
                )
            self._add(HttpRoute(upper, text, prefix, action, where))
            return action

        if handler is not None:
            add(handler)
        return add

    def _add(self, route: HttpRoute) -> None:
        self.routes.append(route)
        if route.prefix:
            self._prefixes.append(route)
            self._prefixes.sort(key=lambda r: len(r.path), reverse=True)
        else:
            self._exact[(route.method, route.path)] = route

    def lookup(self, method: str, path: str) -> HttpRoute | None:
        """The route of ``method path``: exact first, else the longest prefix."""
        method = "GET" if method == "HEAD" else method
        found = self._exact.get((method, path))
        if found is not None:
            return found
        for route in self._prefixes:
            if route.method == method and path.startswith(route.path):
                return route
        return None

    def allowed(self, path: str) -> list[str]:
        """The methods some route answers at ``path`` (for a 405's ``Allow``)."""
        methods = {r.method for r in self.routes if _matches(r, path)}
        if "GET" in methods:
            methods.add("HEAD")
        return sorted(methods)


def http_router() -> HttpRouter:
    """A new, empty router; ``convex/http.py`` binds it to the name ``http``."""
    return HttpRouter()


def check_http_routes(router: object, directory: object) -> None:
    """Refuse an ``http`` in ``convex/http.py`` that is not a router (run after load)."""
    if router is not None and not isinstance(router, HttpRouter):
        _refuse(
            f"{directory}/http.py", f"http is a {type(router).__name__}; write http = http_router()"
        )


def _matches(route: HttpRoute, path: str) -> bool:
    return path.startswith(route.path) if route.prefix else path == route.path


def _method(method: object, where: str) -> str:
    upper = method.upper() if isinstance(method, str) else None
    if upper not in METHODS:
        allowed = ", ".join(METHODS)
        _refuse(
            where,
            f"method={method!r} is not routable; use one of {allowed} "
            "(HEAD is answered by the GET route)",
        )
    return upper


def _path(path: object, prefix: object, where: str) -> tuple[str, bool]:
    if (path is None) == (prefix is None):
        _refuse(where, "a route takes exactly one of path='/x' or path_prefix='/x/'")
    text = path if prefix is None else prefix
    if not isinstance(text, str) or not text.startswith("/"):
        _refuse(where, f"the route's path must be a string starting with '/', not {text!r}")
    if prefix is not None and not text.endswith("/"):
        _refuse(where, f"path_prefix={text!r} must end with '/' (e.g. '/files/')")
    if text.startswith(RESERVED_PREFIX) or text + "/" == RESERVED_PREFIX:
        _refuse(where, f"{text!r} is under {RESERVED_PREFIX}, which Convex reserves")
    return text, prefix is not None


def _refuse(where: str, message: str) -> NoReturn:
    raise HttpRouteError(f"{where}: {message}")
