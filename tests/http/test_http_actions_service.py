"""HTTP actions as a step of the process owner: their port, the ready line, reloads."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from http_actions_kit import HTTP, MESSAGES, SCHEMA

from gateway import Settings
from gateway.cli.serve import _announce
from gateway.service import Service


def _settings(tmp_path: Path) -> Settings:
    return Settings(port=0, site_port=0, data_dir=str(tmp_path / "data"), mqtt_broker="off")


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


async def test_served_on_their_own_port_and_announced(
    make_app: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app_dir = make_app(schema=SCHEMA, messages=MESSAGES, http=HTTP)
    async with Service(app_dir, _settings(tmp_path), on_ready=_announce) as service:
        site_port = service.site_port
        assert site_port is not None and site_port != service.port
        assert await _get(f"http://127.0.0.1:{site_port}/files/exact") == (200, "exact")
        # The API port does not serve them, nor the site the API.
        assert (await _get(f"http://127.0.0.1:{service.port}/files/exact"))[0] == 404
        assert (await _get(f"http://127.0.0.1:{site_port}/health"))[0] == 404
    assert not _listening(site_port)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"Outpost listening on http://127.0.0.1:{service.port}",
        f"Outpost HTTP actions on http://127.0.0.1:{site_port}",
    ]


async def test_no_routes_no_port_until_a_reload_adds_them(
    make_app: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app_dir = make_app(schema=SCHEMA, messages=MESSAGES)
    async with Service(app_dir, _settings(tmp_path), on_ready=_announce) as service:
        assert service.site_port is None
        assert capsys.readouterr().out.count("\n") == 1  # the ready line alone
        (app_dir / "convex" / "http.py").write_text(
            "from aiohttp import web\n"
            "from gateway import http_action, http_router\n"
            "http = http_router()\n"
            "@http.route(path='/hi', method='GET')\n"
            "@http_action\n"
            "async def hi(ctx, request):\n"
            "    return web.Response(text='hi')\n"
        )
        await service.gateway.reload_app()
        assert service.site_port is not None
        assert await _get(f"http://127.0.0.1:{service.site_port}/hi") == (200, "hi")


async def test_a_taken_site_port_fails_the_start_in_one_line(make_app: Any, tmp_path: Path) -> None:
    app_dir = make_app(schema=SCHEMA, messages=MESSAGES, http=HTTP)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(
            port=0, site_port=port, data_dir=str(tmp_path / "data"), mqtt_broker="off"
        )
        with pytest.raises(Exception, match=f"http actions: cannot listen on 127.0.0.1:{port}"):
            async with Service(app_dir, settings):
                pass
