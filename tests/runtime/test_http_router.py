"""``convex/http.py``: routes refused at declaration (file:line), and Convex's lookup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import Gateway, http_action, http_router
from gateway.cli.check import check_app
from gateway.errors import AppLoadError, HttpRouteError
from gateway.runtime.http_router import HttpRouter


@http_action
async def handler(ctx: Any, request: Any) -> Any:
    return None


def _router(*routes: dict[str, Any]) -> HttpRouter:
    router = http_router()
    for route in routes:
        router.route(**route)(handler)
    return router


def test_lookup_exact_then_longest_prefix_per_method() -> None:
    router = _router(
        {"path": "/a/b", "method": "GET"},
        {"path_prefix": "/a/", "method": "GET"},
        {"path_prefix": "/a/b/", "method": "GET"},
        {"path_prefix": "/a/b/", "method": "POST"},
    )
    found = router.lookup("GET", "/a/b")
    assert found is not None and (found.path, found.prefix) == ("/a/b", False)
    found = router.lookup("GET", "/a/b/c")
    assert found is not None and found.path == "/a/b/"
    found = router.lookup("HEAD", "/a/x")
    assert found is not None and found.label == "GET /a/*"
    assert router.lookup("POST", "/a/x") is None
    assert router.allowed("/a/x") == ["GET", "HEAD"]
    assert router.allowed("/nowhere") == []


@pytest.mark.parametrize(
    ("route", "says"),
    [
        ({"path": "/x", "method": "HEAD"}, "HEAD is answered by the GET route"),
        ({"path": "/x", "method": "FETCH"}, "not routable"),
        ({"path": "x", "method": "GET"}, "starting with '/'"),
        ({"path_prefix": "/x", "method": "GET"}, "must end with '/'"),
        ({"path": "/x", "path_prefix": "/x/", "method": "GET"}, "exactly one of"),
        ({"method": "GET"}, "exactly one of"),
        ({"path_prefix": "/.files/", "method": "GET"}, "reserves"),
    ],
)
def test_bad_routes_are_refused_with_file_and_line(route: dict[str, Any], says: str) -> None:
    with pytest.raises(HttpRouteError, match=says) as caught:
        http_router().route(**route)
    assert str(caught.value).startswith(f"{__file__}:")
    assert isinstance(caught.value, AppLoadError)


def test_duplicate_route_is_refused_but_other_method_is_fine() -> None:
    router = _router({"path": "/x", "method": "GET"}, {"path": "/x", "method": "POST"})
    with pytest.raises(HttpRouteError, match="routed twice"):
        router.route(path="/x", method="get")


def test_handler_must_be_an_http_action() -> None:
    async def plain(ctx: Any, request: Any) -> None:
        return None

    with pytest.raises(HttpRouteError, match="@http_action"):
        http_router().route(path="/x", method="GET")(plain)  # type: ignore[arg-type]
    with pytest.raises(HttpRouteError, match="async function"):
        http_action(lambda ctx, request: None)


async def test_app_with_bad_route_names_its_line(make_app: Any, tmp_path: Path) -> None:
    app_dir = make_app(
        http="""
        from gateway import http_action, http_router
        http = http_router()

        @http.route(path="/x", method="GRAB")
        @http_action
        async def x(ctx, request):
            return None
        """
    )
    with pytest.raises(AppLoadError, match=r"convex/http\.py:5: method='GRAB'"):
        async with Gateway.open(app_dir, tmp_path / "data"):
            pass


async def test_http_that_is_not_a_router_is_refused(make_app: Any, tmp_path: Path) -> None:
    app_dir = make_app(http="http = {'routes': []}\n")
    with pytest.raises(AppLoadError, match=r"http\.py: http is a dict; write http = http_router"):
        async with Gateway.open(app_dir, tmp_path / "data"):
            pass


def test_handler_keyword_routes_without_decorating() -> None:
    router = http_router()
    router.route(path="/x", method="GET", handler=handler)
    found = router.lookup("GET", "/x")
    assert found is not None and found.action is handler


def test_outpost_check_lists_routes(make_app: Any, capsys: pytest.CaptureFixture[str]) -> None:
    app_dir = make_app(
        http="""
        from gateway import http_action, http_router
        http = http_router()

        @http.route(path_prefix="/files/", method="GET")
        @http_action
        async def files(ctx, request):
            return None
        """
    )
    assert check_app(app_dir) == 0
    out = capsys.readouterr().out
    assert "http     GET /files/* -> files (" in out and "http.py:5)" in out


# --- lookup's index agrees with a plain scan ------------------------------------------

_SEGMENTS = st.sampled_from(["a", "b", "ab", "files", "x"])
_PATHS = st.lists(_SEGMENTS, min_size=0, max_size=4).map(lambda parts: "/" + "/".join(parts))
_ROUTES = st.lists(st.tuples(st.sampled_from(["GET", "POST"]), _PATHS, st.booleans()), max_size=12)


def _reference(routes: list[tuple[str, str, bool]], method: str, path: str) -> str | None:
    """Convex's rule by a plain scan: the exact route, else the longest matching prefix."""
    method = "GET" if method == "HEAD" else method
    if (method, path, False) in routes:
        return f"{method} {path}"
    prefixes = [p for m, p, is_prefix in routes if is_prefix and m == method]
    matching = [p for p in prefixes if path.startswith(p)]
    return f"{method} {max(matching, key=len)}*" if matching else None


@settings(max_examples=300, deadline=None)
@given(routes=_ROUTES, method=st.sampled_from(["GET", "POST", "HEAD"]), path=_PATHS)
def test_lookup_agrees_with_a_plain_scan(
    routes: list[tuple[str, str, bool]], method: str, path: str
) -> None:
    router = http_router()
    declared: list[tuple[str, str, bool]] = []
    for route_method, route_path, is_prefix in routes:
        text = route_path.rstrip("/") + "/" if is_prefix else route_path
        if (route_method, text, is_prefix) in declared:
            continue  # a duplicate is refused (tested above)
        declared.append((route_method, text, is_prefix))
        if is_prefix:
            router.route(method=route_method, path_prefix=text)(handler)
        else:
            router.route(method=route_method, path=text)(handler)
    found = router.lookup(method, path)
    assert (found.label if found else None) == _reference(declared, method, path)
