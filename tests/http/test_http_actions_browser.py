"""A page on its own origin calls HTTP actions from headless Chromium (``fetch``).

The CORS checklist of Convex's docs, as a browser enforces it: a JSON POST with an
``Authorization`` header and credentials is preflighted, the app's own ``OPTIONS`` route
answers it, and the action's answer (with the app's ``Access-Control-Allow-Origin``; its
``Vary: Origin`` is checked in ``test_http_actions.py``, a page cannot read it) reaches
the page with the identity the Bearer token proved; a route that sets no CORS headers
is blocked by the browser, since nothing is added for it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from chromium_kit import (  # noqa: F401 - chromium_binary_fixture is a fixture
    chromium,
    chromium_binary_fixture,
    evaluate,
    open_tab,
)
from debian import APT_DEADLINE_S
from http_actions_kit import HTTP, MESSAGES, SCHEMA, served_site

FETCH = """
fetch(%(url)s, {
  method: "POST",
  credentials: "include",
  headers: {"Content-Type": "application/json", "Authorization": "Bearer page-token"},
  body: JSON.stringify({reading: 21.5}),
}).then(async (r) => JSON.stringify({status: r.status, body: await r.json()}))
  .catch((e) => JSON.stringify({failed: String(e)}))
"""


@contextlib.asynccontextmanager
async def page_origin() -> AsyncIterator[str]:
    """An empty page on its own origin (an app's page); yields the origin."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>app</title>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


# The first run on a machine may install chromium first.
INSTALL_ALLOWANCE_S = 0.0 if shutil.which("chromium") else APT_DEADLINE_S * 2


@pytest.mark.timeout(INSTALL_ALLOWANCE_S + 60)
async def test_page_calls_http_actions_cross_origin(
    make_app: Any, tmp_path: Path, chromium_binary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_dir = make_app(schema=SCHEMA, messages=MESSAGES, http=HTTP)
    async with (
        served_site(app_dir, tmp_path / "data") as site,
        page_origin() as origin,
        chromium(chromium_binary, tmp_path) as devtools,
    ):

        async def verify(token: str) -> Mapping[str, Any]:
            return {"subject": token, "issuer": "https://issuer.test"}

        monkeypatch.setattr(site.gateway, "verify_token", verify)
        tab = await open_tab(devtools, origin + "/")
        allowed = json.loads(
            await evaluate(devtools, tab, FETCH % {"url": json.dumps(site.url + "/cors")})
        )
        assert allowed == {
            "status": 200,
            "body": {"got": {"reading": 21.5}, "identity": {
                "subject": "page-token", "issuer": "https://issuer.test"}},
        }, devtools.log  # fmt: skip
        blocked = json.loads(
            await evaluate(devtools, tab, FETCH % {"url": json.dumps(site.url + "/echo")})
        )
        assert "failed" in blocked and "fetch" in blocked["failed"].lower(), blocked
