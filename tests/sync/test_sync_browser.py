"""npm ``convex``'s ``ConvexClient`` in headless Chromium shows a live value change.

The page (``browser/live.html``) loads the browser bundle npm ``convex`` ships
(``dist/browser.bundle.js``, a script that defines the global ``convex``) straight from the
test's npm install, so nothing bundled is committed. An aiohttp server on an ephemeral port
serves both. Debian's ``chromium`` runs headless with background networking off and a fresh
profile in a temp dir; the test reads the DOM over the DevTools protocol (a WebSocket on a
port Chromium picks and prints). The count changes through ``POST /api/mutation`` sent from
here, so the page can only learn of it through its subscription.

Chromium is a test dependency, like npm ``convex``: when it is missing and the tests run as
root on Debian, the ``chromium_binary`` fixture installs it with apt-get (once per machine).
Otherwise the test fails and says how to install it: a missing chromium never skips it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from debian import ensure_programs

PAGE = Path(__file__).resolve().parent / "browser" / "live.html"
BUNDLE = Path("node_modules/convex/dist/browser.bundle.js")
CHROMIUM_ENV = "OUTPOST_CHROMIUM"
APT_DEADLINE_S = 900.0
START_DEADLINE_S = 30.0
COMMAND_DEADLINE_S = 10.0
SHOW_DEADLINE_S = 10.0
STOP_DEADLINE_S = 5.0
DEVTOOLS_LINE = re.compile(r"DevTools listening on (ws://\S+)")


# --- chromium, installed when missing ------------------------------------------------


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    """Debian's ``chromium`` (or ``$OUTPOST_CHROMIUM``); as root, apt-get installs it."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured
    return ensure_programs(["chromium"], ["chromium"], "the browser test")["chromium"]


# --- the DevTools protocol ------------------------------------------------------------


class DevTools:
    """One DevTools connection: commands answered by id, console lines kept for reports."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self.log: list[str] = []
        self.reader = asyncio.create_task(self._read(), name="devtools-reader")

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "id" in data:
                    reply = self.pending.pop(data["id"], None)
                    if reply is not None and not reply.done():
                        reply.set_result(data)
                else:
                    self._event(data["method"], data.get("params", {}))
        finally:
            for reply in self.pending.values():
                if not reply.done():
                    reply.set_exception(ConnectionError("the DevTools socket closed"))

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled":
            words = [str(a.get("value", a.get("description", ""))) for a in params["args"]]
            self.log.append(f"console.{params['type']}: {' '.join(words)}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = (details.get("exception") or {}).get("description") or details.get("text")
            self.log.append(f"exception: {text}")
        for waiter in self.waiters.pop(method, []):
            if not waiter.done():
                waiter.set_result(params)

    def event(self, method: str) -> asyncio.Future[dict[str, Any]]:
        """The next ``method`` event (ask before the command that causes it)."""
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(method, []).append(waiter)
        return waiter

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        wait_s: float = COMMAND_DEADLINE_S,
    ) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        reply = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = reply
        await self.ws.send_str(json.dumps(message))
        try:
            answer = await asyncio.wait_for(reply, wait_s)
        finally:
            self.pending.pop(message["id"], None)
        assert "error" not in answer, f"{method} failed: {answer['error']}"
        return answer["result"]  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


class Page:
    """The page's target, attached with a flat session on the browser connection."""

    def __init__(self, devtools: DevTools, session: str, shots: Path) -> None:
        self.devtools = devtools
        self.session = session
        self.shots = shots

    async def evaluate(self, expression: str, wait_s: float = COMMAND_DEADLINE_S) -> Any:
        params = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        result = await self.devtools.send("Runtime.evaluate", params, self.session, wait_s)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

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


@contextlib.asynccontextmanager
async def chromium(binary: str, root: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium with a fresh profile under ``root``, its browser DevTools socket.

    It runs in its own process group, and that group is ended on the way out, whatever
    happened (renderers and the zygote included).
    """
    profile = root / "profile"
    cmd = [
        binary,
        "--headless",
        "--no-sandbox",  # root in a container: the setuid sandbox is not available
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--mute-audio",
        "--password-store=basic",
        "--use-mock-keychain",
        f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "about:blank",
    ]
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_CACHE_HOME": str(root / "cache"),
    }
    process = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    stderr: list[str] = []
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def drain() -> None:
        assert process.stderr is not None
        async for raw in process.stderr:
            line = raw.decode(errors="replace").rstrip()
            stderr.append(line)
            match = DEVTOOLS_LINE.search(line)
            if match and not listening.done():
                listening.set_result(match.group(1))
        if not listening.done():
            listening.set_result("")

    drainer = asyncio.create_task(drain(), name="chromium-stderr")
    devtools: DevTools | None = None
    try:
        try:
            url = await asyncio.wait_for(listening, START_DEADLINE_S)
        except TimeoutError:
            url = ""
        if not url:
            ended = "it exited" if drainer.done() else f"{START_DEADLINE_S:.0f} s passed"
            pytest.fail(
                f"chromium printed no DevTools URL ({ended}): {' '.join(cmd)}\nstderr:\n"
                + "\n".join(stderr[-40:])
            )
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(url, max_msg_size=64 * 2**20)
            devtools = DevTools(ws)
            try:
                yield devtools
            finally:
                with contextlib.suppress(AssertionError, ConnectionError, TimeoutError):
                    await devtools.send("Browser.close", wait_s=STOP_DEADLINE_S)
                await devtools.close()
    finally:
        await _stop(process)
        try:
            await asyncio.wait_for(drainer, STOP_DEADLINE_S)
        except TimeoutError:  # wait_for cancelled it
            pass


async def _stop(process: asyncio.subprocess.Process) -> None:
    """End Chromium: it may have closed itself; then SIGTERM, then SIGKILL its group."""
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(process.wait(), STOP_DEADLINE_S)
            break
        except TimeoutError:
            continue
    # Helpers left in the group once the browser process is gone.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


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
    target = await devtools.send("Target.createTarget", {"url": "about:blank"})
    attached = await devtools.send(
        "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
    )
    page = Page(devtools, attached["sessionId"], shots)
    await devtools.send("Runtime.enable", session=page.session)
    await devtools.send("Page.enable", session=page.session)
    loaded = devtools.event("Page.loadEventFired")
    navigated = await devtools.send("Page.navigate", {"url": url}, page.session)
    assert "errorText" not in navigated, navigated
    await asyncio.wait_for(loaded, COMMAND_DEADLINE_S)
    return page


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
