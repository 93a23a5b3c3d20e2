"""``functions:list``: the app's functions and HTTP routes with their validators as JSON.

The query reads no table; an app reload reruns every live query (``invalidate_all``), so
a subscription to it follows the app's code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from gateway.runtime.functions import RegisteredFunction
from gateway.runtime.loader import App

LIST_PATH: Final = "_system/dashboard/functions:list"


def functions(current_app: Callable[[], App]) -> list[RegisteredFunction]:
    """The query; ``current_app`` gives the app served at the time of each call."""

    async def listing(ctx: Any, args: dict[str, Any]) -> list[dict[str, Any]]:
        return app_rows(current_app())

    return [RegisteredFunction("query", "internal", listing, {}, path=LIST_PATH)]


def app_rows(app: App) -> list[dict[str, Any]]:
    """Every function and HTTP route of ``app``, by path."""
    rows = [_function_row(path, fn) for path, fn in app.functions.items()]
    router = app.http
    for route in getattr(router, "routes", None) or []:
        rows.append(_route_row(route))
    return sorted(rows, key=lambda row: row["path"])


def _function_row(path: str, fn: RegisteredFunction) -> dict[str, Any]:
    module, _, name = path.partition(":")
    return {
        "path": path,
        "module": module,
        "name": name,
        "kind": fn.kind,
        "visibility": fn.visibility,
        "args": _json(fn.args_validator),
        "returns": _json(fn.returns_validator),
    }


def _route_row(route: Any) -> dict[str, Any]:
    return {
        "path": route.label,
        "module": "http",
        "name": route.action.name,
        "kind": "httpAction",
        "visibility": "public",
        "method": route.method,
        "route": route.path + ("*" if route.prefix else ""),
        "args": None,
        "returns": None,
    }


def _json(validator: Any) -> Any:
    return None if validator is None else validator.to_json()
