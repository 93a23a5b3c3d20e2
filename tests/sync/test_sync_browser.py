"""npm ``convex``'s ``ConvexClient`` in headless Chromium shows a live value change.

The page (``browser/live.html``) loads the browser bundle npm ``convex`` ships
(``dist/browser.bundle.js``, a script that defines the global ``convex``) straight from the
test's npm install, so nothing bundled is committed. An aiohttp server on an ephemeral port
serves both. Debian's ``chromium`` runs headless with background networking off and a fresh
profile in a temp dir; the test reads the DOM over the DevTools protocol (a WebSocket on a
port Chromium picks and prints). The count changes through ``POST /api/mutation`` sent from
here, so the page can only learn of it through its subscription.

Chromium is a test dependency, like npm ``convex`` (``tests/chromium_kit.py`` installs it
with apt-get as root, once per machine; otherwise the test fails and says how to install it:
a missing chromium never skips it).
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from chromium_kit import (  # noqa: F401 - chromium_binary_fixture is a fixture
    COMMAND_DEADLINE_S,
    DevTools,
    chromium,
    chromium_binary_fixture,
    evaluate,
    open_tab,
)

PAGE = Path(__file__).resolve().parent / "browser" / "live.html"
BUNDLE = Path("node_modules/convex/dist/browser.bundle.js")
APT_DEADLINE_S = 900.0
SHOW_DEADLINE_S = 10.0


class Page:
    """The page's target, attached with a flat session on the browser connection."""

    def __init__(self, devtools: DevTools, session: str, shots: Path) -> None:
        self.devtools = devtools
        self.session = session
        self.shots = shots

    async def evaluate(self, expression: str, wait_s: float = COMMAND_DEADLINE_S) -> Any:
        return await evaluate(self.devtools, self.session, expression, wait_s)

    async def state(self) -> dict[str, Any]:
        """What the page shows and what its client saw."""
        text = await self.evaluate(
            "JSON.stringify({value: document.getElementById('value').textContent,"
            " status: document.getElementById('status').textContent,"
            " seen: window.seen, failures: window.failures})"
        )
        return json.loads(text)  # type: ignore[no-any-return]

    async def shows(self, text: str) -> None:
        """Wait until #value reads ``text`` (a MutationObserver; no polling, a deadline)."""
        expression = (
            "new Promise((resolve) => {"
            " const el = document.getElementById('value');"
            " const observer = new MutationObserver(() => check());"
            f" const check = () => {{ if (el.textContent === {json.dumps(text)}) {{"
            "   observer.disconnect(); resolve(true); } };"
            " observer.observe(el, {childList: true, characterData: true, subtree: true});"
            " check(); })"
        )
        try:
            await self.evaluate(expression, SHOW_DEADLINE_S)
        except TimeoutError:
            raise AssertionError(
                f"the page did not show {text!r} within {SHOW_DEADLINE_S:.0f} s\n"
                + await self.describe()
            ) from None

    async def describe(self) -> str:
        """The page's state, console lines and a screenshot, for failure messages."""
        parts = []
        try:
            parts.append(f"page: {await self.state()}")
            shot = await self.devtools.send("Page.captureScreenshot", {}, self.session)
            path = self.shots / f"page-{uuid.uuid4().hex[:6]}.png"
            path.write_bytes(base64.b64decode(shot["data"]))
            parts.append(f"screenshot: {path}")
        except (AssertionError, ConnectionError, TimeoutError) as exc:
            parts.append(f"(page state unavailable: {exc!r})")
        parts.append("console:\n" + "\n".join(self.devtools.log))
        return "\n".join(parts)


# --- the page and its server ------------------------------------------------------------


@contextlib.asynccontextmanager
async def page_server(bundle: Path) -> AsyncIterator[str]:
    """``/`` is the page, ``/convex.js`` npm convex's browser bundle; yields the base URL."""

    async def page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(PAGE)

    async def script(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(bundle, headers={"Content-Type": "text/javascript"})

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/convex.js", script)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def open_page(devtools: DevTools, url: str, shots: Path) -> Page:
    """A new tab, attached, with console capture, navigated to ``url`` and loaded."""
    return Page(devtools, await open_tab(devtools, url), shots)


async def add_item(server: Any, batch: str, n: float) -> None:
    """``items:add`` through the HTTP API, not through the page's client."""
    body = {"path": "items:add", "args": {"batch": batch, "n": n}, "format": "json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.url}/api/mutation", json=body) as response,
    ):
        assert response.status == 200, await response.text()
        answer = await response.json()
    assert answer["status"] == "success", answer


# The first run on a machine may install chromium first: two apt-get runs on top.
INSTALL_ALLOWANCE_S = 0.0 if shutil.which("chromium") else APT_DEADLINE_S * 2


@pytest.mark.timeout(INSTALL_ALLOWANCE_S + 60)
async def test_sync_browser_page_shows_live_value_after_mutation(
    server: Any, convex_npm: Path, chromium_binary: str, tmp_path: Path
) -> None:
    bundle = convex_npm / BUNDLE
    assert bundle.is_file(), f"npm convex no longer ships {BUNDLE}; the page needs a bundle"
    batch = f"browser-live-{uuid.uuid4().hex[:8]}"
    async with page_server(bundle) as base, chromium(chromium_binary, tmp_path) as devtools:
        query = urllib.parse.urlencode({"url": server.url, "batch": batch})
        page = await open_page(devtools, f"{base}/?{query}", tmp_path)
        await page.shows("0")
        await add_item(server, batch, 1.0)
        await page.shows("1")
        await add_item(server, batch, 2.0)
        await page.shows("2")
        state = await page.state()
        assert state["status"] == "live", await page.describe()
        # One value per change, in order: the page never reloaded or refetched from scratch.
        assert state["seen"] == [0, 1, 2], await page.describe()
        assert state["failures"] == [], await page.describe()
