"""Headless Chromium for browser tests: the binary, a DevTools connection, a fresh tab.

Debian's ``chromium`` is a test dependency like npm ``convex``: when it is missing and the
tests run as root on Debian, the ``chromium_binary`` fixture installs it with apt-get
(once per machine); otherwise the test fails and says how to install it (or set
``OUTPOST_CHROMIUM``). Chromium runs headless with background networking off, a fresh
profile in a temp dir and its own process group, ended on the way out; pages are driven
over the DevTools protocol (a WebSocket on a port Chromium picks and prints).

Import the fixture where it is used: ``from chromium_kit import chromium_binary_fixture``
(registered as ``chromium_binary``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from debian import ensure_programs

CHROMIUM_ENV = "OUTPOST_CHROMIUM"
START_DEADLINE_S = 30.0
COMMAND_DEADLINE_S = 10.0
STOP_DEADLINE_S = 5.0
DEVTOOLS_LINE = re.compile(r"DevTools listening on (ws://\S+)")
# Headless, quiet (no background networking or updates), DevTools on a loopback port
# Chromium picks and prints (``DEVTOOLS_LINE``).
CHROMIUM_FLAGS = [
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
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


@pytest.fixture(name="chromium_binary", scope="session")
def chromium_binary_fixture() -> str:
    """Debian's ``chromium`` (or ``$OUTPOST_CHROMIUM``); as root, apt-get installs it."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured
    return ensure_programs(["chromium"], ["chromium"], "the browser test")["chromium"]


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


@contextlib.asynccontextmanager
async def chromium(binary: str, root: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium with a fresh profile under ``root``, its browser DevTools socket.

    It runs in its own process group, and that group is ended on the way out, whatever
    happened (renderers and the zygote included).
    """
    profile = root / "profile"
    cmd = [
        binary,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
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


async def open_tab(devtools: DevTools, url: str) -> str:
    """A new tab, attached (flat session), with console capture, navigated to ``url`` and
    loaded; returns its session id."""
    target = await devtools.send("Target.createTarget", {"url": "about:blank"})
    attached = await devtools.send(
        "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
    )
    session: str = attached["sessionId"]
    await devtools.send("Runtime.enable", session=session)
    await devtools.send("Page.enable", session=session)
    loaded = devtools.event("Page.loadEventFired")
    navigated = await devtools.send("Page.navigate", {"url": url}, session)
    assert "errorText" not in navigated, navigated
    await asyncio.wait_for(loaded, COMMAND_DEADLINE_S)
    return session


async def evaluate(
    devtools: DevTools, session: str, expression: str, wait_s: float = COMMAND_DEADLINE_S
) -> Any:
    """``expression``'s value in the tab (promises awaited); a page exception fails."""
    params = {"expression": expression, "awaitPromise": True, "returnByValue": True}
    result = await devtools.send("Runtime.evaluate", params, session, wait_s)
    assert "exceptionDetails" not in result, result["exceptionDetails"]
    return result["result"].get("value")
