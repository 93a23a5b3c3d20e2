"""``//api/query`` served as ``/api/query``, resolved before routing (not a redirect).

The npm client builds URLs as ``${address}/api/...``, so a deployment URL with a
trailing slash sends ``//api/...`` (wire spec 1.4); WebSocket clients do not follow
redirects. aiohttp resolves the route before any middleware runs, so the fold lives
in the router: a catch-all resource, consulted only after every other resource failed
to match, that folds repeated slashes and resolves the folded path again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from aiohttp import web
from aiohttp.abc import AbstractMatchInfo
from aiohttp.web_urldispatcher import AbstractRoute, MatchInfoError, UrlMappingMatchInfo, _InfoDict
from yarl import URL

_SLASHES = re.compile(r"//+")


class FoldedSlashes(web.AbstractResource):
    """Matches a path with repeated slashes when its folded form has a route."""

    def __init__(self, router: web.UrlDispatcher) -> None:
        super().__init__(name=None)
        self._router = router

    @property
    def canonical(self) -> str:
        return "/"  # indexed under "/": the last candidate of every path's walk

    def url_for(self, **kwargs: str) -> URL:
        raise RuntimeError("FoldedSlashes builds no URLs")

    def add_prefix(self, prefix: str) -> None:
        raise RuntimeError("FoldedSlashes cannot live in a sub-application")

    def get_info(self) -> _InfoDict:
        return {}

    def raw_match(self, path: str) -> bool:
        return False

    async def resolve(self, request: web.Request) -> tuple[UrlMappingMatchInfo | None, set[str]]:
        path = request.rel_url.path
        if "//" not in path:
            return None, set()
        folded = request.rel_url.with_path(_SLASHES.sub("/", path), encoded=False)
        match: AbstractMatchInfo = await self._router.resolve(request.clone(rel_url=folded))
        if isinstance(match, MatchInfoError):
            exc = match.http_exception
            return None, set(getattr(exc, "allowed_methods", ()))
        assert isinstance(match, UrlMappingMatchInfo)
        return match, set()

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[AbstractRoute]:
        return iter(())


def fold_repeated_slashes(router: web.UrlDispatcher) -> None:
    """Register the fold; call after every other route is added."""
    router.register_resource(FoldedSlashes(router))
