"""The Host allowlist (DNS rebinding) and /metrics kept from pages in a browser."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import aiohttp
from http_actions_kit import HTTP, MESSAGES, SCHEMA, served_site

from gateway import Gateway, Settings
from gateway.http import HttpServer
from gateway.http.hosts import HostPolicy, host_name


def test_the_name_of_a_host_header_drops_the_port_case_and_final_dot() -> None:
    assert host_name("Example.COM.:3210") == "example.com"
    assert host_name("[::1]:3210") == "::1"
    assert host_name("[fe80::1]") == "fe80::1"
    assert host_name("gw") == "gw"


def test_the_policy_answers_addresses_this_machine_and_the_names_it_is_given() -> None:
    machine = socket.gethostname().lower()
    settings = Settings(
        site_url="https://gw.example.org", discovery_name="barn", allowed_hosts=" .farm.lan, Hub "
    )
    policy = HostPolicy.from_settings(settings)
    allowed = [
        None,
        "",
        "127.0.0.1:3210",
        "192.168.1.50",
        "[::1]:3210",
        "localhost:3210",
        machine,
        f"{machine}.local:3210",
        "barn.local",
        "gw.example.org",
        "pump.farm.lan",
        "HUB",
    ]
    for header in allowed:
        assert policy.allows(header), header
    for header in ("evil.example", "farm.lan.evil.example", "attacker.local", "hub.x"):
        assert not policy.allows(header), header
    assert HostPolicy(["*"]).allows("evil.example")


async def test_a_rebound_name_is_refused_and_an_allowed_one_answered(
    app_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(allowed_hosts="gateway.farm.lan")
    async with (
        Gateway.open(app_dir, tmp_path / "data") as gw,
        HttpServer(gw, settings=settings) as server,
    ):
        port = await server.start("127.0.0.1", 0)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            evil = {"Host": f"evil.example:{port}"}
            async with session.get("/health", headers=evil) as resp:
                assert resp.status == 403
                body = await resp.json(content_type=None)
                assert body["code"] == "ForbiddenHost"
                assert "allowed_hosts" in body["message"]
                assert "evil.example" in body["message"]
            ok = {"Host": f"gateway.farm.lan:{port}"}
            async with session.get("/health", headers=ok) as resp:
                assert resp.status == 200
            async with session.get("/health") as resp:  # 127.0.0.1: an address
                assert resp.status == 200


async def test_metrics_refuse_a_page_in_a_browser_on_this_machine(
    app_dir: Path, tmp_path: Path
) -> None:
    async with Gateway.open(app_dir, tmp_path / "data") as gw, HttpServer(gw) as server:
        port = await server.start("127.0.0.1", 0)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            async with session.get("/metrics") as resp:
                assert resp.status == 200  # a scraper on this machine
            page = {"Origin": "https://evil.example"}
            async with session.get("/metrics", headers=page) as resp:
                assert resp.status == 403
                assert "Access-Control-Allow-Origin" not in resp.headers
            async with session.get("/health", headers=page) as resp:  # the API keeps CORS
                assert resp.headers["Access-Control-Allow-Origin"] == "https://evil.example"


async def test_http_actions_refuse_a_rebound_name_too(make_app: Any, tmp_path: Path) -> None:
    app_dir = make_app(schema=SCHEMA, messages=MESSAGES, http=HTTP)
    async with served_site(app_dir, tmp_path / "data") as site:
        async with site.session.post("/echo", json={"a": 1}) as resp:
            assert resp.status == 200
        evil = {"Host": "evil.example"}
        async with site.session.post("/echo", json={"a": 1}, headers=evil) as resp:
            assert resp.status == 403
            assert (await resp.json(content_type=None))["code"] == "ForbiddenHost"
