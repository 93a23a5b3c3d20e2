"""``/dashboard/``: the page's files (no key needed, Host allowlist, caching, gzip) and
the login token exchange behind ``outpost dashboard``."""

from __future__ import annotations

import asyncio
import gzip
import json

import aiohttp
from dashboard.dashboard_kit import Served

from gateway.admin_socket import post as post_over_socket
from gateway.http.dashboard import load_assets
from gateway.http.dashboard_login import LoginTokens


async def test_page_served_without_key_with_strict_headers(served: Served) -> None:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(
            f"{served.url}/dashboard/", headers={"Origin": "http://evil.example"}
        ) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/html")
            policy = r.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
            assert f"ws://{served.url.removeprefix('http://')}" in policy
            assert r.headers["Cache-Control"] == "no-cache"
            assert "Access-Control-Allow-Origin" not in r.headers  # no CORS on the page
            etag = r.headers["ETag"]
            page = gzip.decompress(await r.read()).decode()
        assert '<script type="module" src="app.js">' in page
        async with session.get(f"{served.url}/dashboard/", headers={"If-None-Match": etag}) as r:
            assert r.status == 304
        async with session.get(
            f"{served.url}/dashboard/app.js", headers={"Accept-Encoding": "gzip"}
        ) as r:
            assert r.status == 200 and r.headers["Content-Encoding"] == "gzip"
            assert r.headers["Content-Type"].startswith("text/javascript")
        async with session.get(f"{served.url}/dashboard/nope.js") as r:
            assert r.status == 404
        async with session.get(f"{served.url}/dashboard", allow_redirects=False) as r:
            assert r.status == 308 and r.headers["Location"] == "/dashboard/"
        async with session.get(
            f"{served.url}/dashboard/", headers={"Host": "rebound.example"}
        ) as r:
            assert r.status == 403 and (await r.json())["code"] == "ForbiddenHost"


def test_every_page_file_is_packaged_and_small() -> None:
    assets = load_assets()
    assert {"index.html", "app.js", "sync.js", "api.js", "style.css", "data.js"} <= set(assets)
    sent = sum(len(a.gzipped or a.body) for a in assets.values())
    assert sent < 60_000, f"the page's files weigh {sent} bytes gzipped"


async def test_login_token_once_and_only_for_admins(served: Served) -> None:
    socket_answer = await asyncio.to_thread(
        post_over_socket, served.data_dir, "/dashboard/login-token", b"{}", 10
    )
    assert socket_answer is not None and socket_answer[0] == 200
    token = json.loads(socket_answer[1])["token"]
    async with aiohttp.ClientSession(served.url) as session:
        async with session.post("/dashboard/login-token", json={}) as r:
            assert r.status == 403  # no key over TCP
        wrong = {"Authorization": "Convex outpost-0000"}
        async with session.post("/dashboard/login-token", json={}, headers=wrong) as r:
            assert r.status == 403 and (await r.json())["code"] == "BadAdminKey"
        async with session.post("/dashboard/login", json={"token": token}) as r:
            assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
            assert (await r.json()) == {"adminKey": served.admin_key}
        async with session.post("/dashboard/login", json={"token": token}) as r:
            assert r.status == 403 and (await r.json())["code"] == "BadLoginToken"
        key = {"Authorization": f"Convex {served.admin_key}"}
        async with session.post("/dashboard/login-token", json={}, headers=key) as r:
            assert r.status == 200 and (await r.json())["expiresInS"] == 60


def test_login_tokens_expire() -> None:
    now = [0.0]
    tokens = LoginTokens(ttl_s=60.0, clock=lambda: now[0])
    old, fresh = tokens.mint(), tokens.mint()
    now[0] = 61.0
    assert not tokens.redeem(old)
    tokens = LoginTokens(ttl_s=60.0, clock=lambda: now[0])
    fresh = tokens.mint()
    now[0] = 100.0
    assert tokens.redeem(fresh)
    assert not tokens.redeem("made-up")
