"""One headless Chromium per test module, a DevTools connection and tab per test.

``tests/chromium_kit.py`` starts a browser per test inside the test's event loop; the
dashboard tests open many pages, so the browser process is started once per module
(plain ``subprocess``, no event loop) and each test connects its own DevTools socket
in its own loop, closing it (and its tabs) when done: no task outlives a test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import selectors
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from chromium_kit import (  # noqa: F401 - chromium_binary_fixture is a fixture
    CHROMIUM_FLAGS,
    DEVTOOLS_LINE,
    START_DEADLINE_S,
    DevTools,
    chromium_binary_fixture,
    evaluate,
)

WAIT_S = 10.0


@pytest.fixture(name="chromium_url", scope="module")
def chromium_url_fixture(
    chromium_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A headless Chromium for the module: its browser DevTools URL."""
    root = tmp_path_factory.mktemp("chromium")
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_CACHE_HOME": str(root / "cache"),
    }
    cmd = [chromium_binary, *CHROMIUM_FLAGS, f"--user-data-dir={root / 'profile'}", "about:blank"]
    process = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        yield _devtools_url(process)
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(5)
                break
            except subprocess.TimeoutExpired:
                continue
        assert process.stderr is not None
        process.stderr.close()


def _devtools_url(process: subprocess.Popen[bytes]) -> str:
    assert process.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + START_DEADLINE_S
    seen: list[str] = []
    buffer = b""
    while time.monotonic() < deadline:
        if not selector.select(deadline - time.monotonic()):
            break
        chunk = os.read(process.stderr.fileno(), 65536)
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            text = line.decode(errors="replace")
            seen.append(text)
            match = DEVTOOLS_LINE.search(text)
            if match:
                selector.close()
                # Stop reading: the pipe's buffer is large and Chromium is quiet headless.
                return match.group(1)
    selector.close()
    pytest.fail("chromium printed no DevTools URL:\n" + "\n".join(seen[-40:]))


class Tab:
    """One page, attached with a flat session, driven by expressions."""

    def __init__(self, devtools: DevTools, session: str, target: str, shots: Path) -> None:
        self.devtools = devtools
        self.session = session
        self.target = target
        self.shots = shots

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.devtools.send(method, params, self.session)

    async def goto(self, url: str) -> None:
        loaded = self.devtools.event("Page.loadEventFired")
        navigated = await self.send("Page.navigate", {"url": url})
        assert "errorText" not in navigated, navigated
        await _wait_for(loaded)

    async def eval(self, expression: str, wait_s: float = WAIT_S) -> Any:
        return await evaluate(self.devtools, self.session, expression, wait_s)

    async def until(self, expression: str, what: str, wait_s: float = WAIT_S) -> Any:
        """Wait (a deadline, polled in the page) until ``expression`` is truthy; its value."""
        deadline_ms = int(wait_s * 1000)
        js = (
            f"new Promise((resolve) => {{ const end = Date.now() + {deadline_ms};"
            f" const tick = () => {{ let v; try {{ v = ({expression}); }} catch (e) {{ v = undefined; }}"
            " if (v || Date.now() > end) return resolve(v ? (typeof v === 'object' ? true : v) : null);"
            " setTimeout(tick, 25); };"
            " tick(); })"
        )
        value = await self.eval(js, wait_s + 5)
        if not value:
            raise AssertionError(
                f"the page did not show {what} in {wait_s:.0f} s\n{await self.describe()}"
            )
        return value

    async def text(self, selector: str) -> str:
        return await self.eval(f"document.querySelector({json.dumps(selector)})?.textContent ?? ''")  # type: ignore[no-any-return]

    async def click(self, selector: str) -> None:
        await self.until(f"document.querySelector({json.dumps(selector)})", selector)
        await self.eval(f"document.querySelector({json.dumps(selector)}).click()")

    async def type(self, selector: str, value: str) -> None:
        """Set an input's value as a user would (an input event follows)."""
        await self.until(f"document.querySelector({json.dumps(selector)})", selector)
        await self.eval(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            f" el.value = {json.dumps(value)}; el.dispatchEvent(new Event('input', {{bubbles: true}})); }})()"
        )

    async def screenshot(self, name: str) -> Path:
        """A PNG of the viewport in the test's tmp_path; checked to be an image."""
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        data = base64.b64decode(shot["data"])
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, len(data)
        path = self.shots / f"{name}.png"
        path.write_bytes(data)
        return path

    async def describe(self) -> str:
        parts = []
        try:
            body = await self.eval("document.body.innerText.slice(0, 2000)")
            parts.append(f"page text:\n{body}")
            parts.append(f"screenshot: {await self.screenshot('failure')}")
        except (AssertionError, ConnectionError, TimeoutError) as exc:
            parts.append(f"(page unavailable: {exc!r})")
        parts.append("console:\n" + "\n".join(self.devtools.log[-40:]))
        return "\n".join(parts)


async def _wait_for(future: asyncio.Future[Any]) -> Any:
    return await asyncio.wait_for(future, WAIT_S)


@contextlib.asynccontextmanager
async def browser(devtools_url: str, shots: Path) -> AsyncIterator[Browser]:
    """A DevTools connection to the module's Chromium; its tabs closed on the way out."""
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(devtools_url, max_msg_size=64 * 2**20)
        devtools = DevTools(ws)
        opened = Browser(devtools, shots)
        try:
            yield opened
        finally:
            for tab in opened.tabs:
                with contextlib.suppress(AssertionError, ConnectionError, TimeoutError):
                    await devtools.send("Target.closeTarget", {"targetId": tab.target})
            await devtools.close()


class Browser:
    def __init__(self, devtools: DevTools, shots: Path) -> None:
        self.devtools = devtools
        self.shots = shots
        self.tabs: list[Tab] = []

    async def tab(self, url: str, *, width: int = 1200, height: int = 800) -> Tab:
        """A new tab of ``width`` x ``height``, navigated to ``url`` and loaded."""
        target = await self.devtools.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.devtools.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        tab = Tab(self.devtools, attached["sessionId"], target["targetId"], self.shots)
        self.tabs.append(tab)
        await tab.send("Runtime.enable")
        await tab.send("Page.enable")
        await tab.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        await tab.goto(url)
        return tab
