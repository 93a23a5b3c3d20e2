"""Logging in to the dashboard in headless Chromium: refusals (no key, wrong key), the
admin key kept in session storage and never in a URL, and ``outpost dashboard``'s
one-time link."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from dashboard.browser_kit import browser
from dashboard.dashboard_kit import Served

from gateway.admin_socket import post as post_over_socket

REPO = Path(__file__).resolve().parents[2]
READY = "document.body.dataset.state === 'ready'"
LOGIN = "document.body.dataset.state === 'login'"


async def test_refusals_then_login_with_the_key(
    served: Served, chromium_url: str, tmp_path: Path
) -> None:
    async with browser(chromium_url, tmp_path) as chrome:
        tab = await chrome.tab(f"{served.url}/dashboard/")
        await tab.until(LOGIN, "the login form")
        await tab.click("#login button")
        await tab.until(
            "document.querySelector('#login-message').textContent.includes('Enter the admin key')",
            "no key",
        )
        await tab.type("#key", "outpost-" + "0" * 64)
        await tab.click("#login button")
        await tab.until(
            "document.querySelector('#login-message').textContent.includes(\"the admin key is not this gateway's\")",
            "the refusal of a wrong key",
        )
        assert (
            await tab.eval("document.querySelector('#login-message').className") == "message error"
        )
        assert await tab.eval("sessionStorage.length") == 0
        await tab.screenshot("refused")
        await tab.type("#key", served.admin_key)
        await tab.click("#login button")
        await tab.until(READY, "the dashboard")
        await tab.until("document.querySelector('#link').textContent === 'live'", "the live link")
        assert await tab.eval("sessionStorage.getItem('outpost.adminKey')") == served.admin_key
        assert served.admin_key not in await tab.eval("location.href")
        await tab.screenshot("logged-in")
        # A reload keeps the session (the tab's storage); logging out forgets the key.
        await tab.goto(f"{served.url}/dashboard/")
        await tab.until(READY, "the dashboard after a reload")
        await tab.click("#logout")
        await tab.until(LOGIN, "the login form after logging out")
        assert await tab.eval("sessionStorage.length") == 0


async def test_outpost_dashboard_link_logs_in_once(
    served: Served, chromium_url: str, tmp_path: Path
) -> None:
    port = served.url.rsplit(":", 1)[1]
    cmd = [
        sys.executable,
        "-m",
        "gateway.cli",
        "dashboard",
        str(tmp_path),
        "--no-open",
        "--data-dir",
        str(served.data_dir),
        "--port",
        port,
    ]
    done = await asyncio.to_thread(
        subprocess.run, cmd, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    url = done.stdout.splitlines()[0]
    assert url.startswith(f"{served.url}/dashboard/#login="), done.stdout
    async with browser(chromium_url, tmp_path) as chrome:
        tab = await chrome.tab(url)
        await tab.until(READY, "the dashboard opened by the link")
        assert await tab.eval("location.hash") == ""  # the token left the address bar
        # A second link pasted into the open tab: only the fragment changes.
        answer = await asyncio.to_thread(
            post_over_socket, served.data_dir, "/dashboard/login-token", b"{}", 10
        )
        assert answer is not None and answer[0] == 200
        token = json.loads(answer[1])["token"]
        await tab.eval(f"location.hash = {json.dumps('#login=' + token)}")
        await tab.until(
            "location.hash === '' && document.body.dataset.state === 'ready'", "relogin"
        )
        again = await chrome.tab(url)
        await again.until(LOGIN, "the login form for a used link")
        message = await again.text("#login-message")
        assert "used already" in message, message


def test_outpost_dashboard_without_a_gateway_says_so(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "gateway.cli",
        "dashboard",
        str(tmp_path),
        "--no-open",
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        "9",
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == "", done
    assert "no admin key" in done.stderr, done.stderr
    (tmp_path / "data").mkdir(mode=0o700)
    (tmp_path / "data" / "admin_key").write_text("outpost-" + "1" * 64)
    (tmp_path / "data" / "admin_key").chmod(0o600)
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "no gateway answers at http://127.0.0.1:9" in done.stderr, done
