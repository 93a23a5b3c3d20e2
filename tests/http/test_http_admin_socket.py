"""The admin socket of a running ``Service``: a call there is an admin's without a key,
the same call over TCP without the key is not; the file is 0600, removed at stop,
replaced when a killed process left it, and skipped (with a warning) when the data
directory's path is too long for a UNIX socket."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
from pathlib import Path

import aiohttp
import pytest
from admin_socket_kit import query_over_socket, short_dir, write_secret_app

from gateway import Settings
from gateway.admin_key import read_admin_key
from gateway.admin_socket import MAX_SOCKET_PATH_BYTES, admin_socket_path
from gateway.errors import StartError
from gateway.http.unix_site import PathTooLong, bind_private
from gateway.service import Service


def _service(app: Path, data: Path) -> Service:
    settings = Settings(port=0, data_dir=str(data), mqtt_broker="off", discovery=False)
    return Service(app, settings)


async def _over_tcp(port: int, fn: str, key: str | None) -> dict[str, object]:
    headers = {"Authorization": f"Convex {key}"} if key else {}
    body = {"path": fn, "args": {}, "format": "json"}
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{port}/api/query"
        async with session.post(url, json=body, headers=headers) as response:
            reply: dict[str, object] = await response.json()
            return reply


async def test_a_call_on_the_socket_is_an_admins_and_over_tcp_it_needs_the_key(
    tmp_path: Path,
) -> None:
    app = write_secret_app(tmp_path / "app")
    with short_dir() as data:
        async with _service(app, data) as service:
            status, reply = await asyncio.to_thread(query_over_socket, data, "secrets:secret")
            assert (status, reply["status"], reply["value"]) == (200, "success", "only admins")
            refused = await _over_tcp(service.port, "secrets:secret", None)
            assert refused["status"] == "error"
            assert "Could not find public function" in str(refused["errorMessage"])
            key = read_admin_key(data)
            allowed = await _over_tcp(service.port, "secrets:secret", key)
            assert allowed["value"] == "only admins"


async def test_a_wrong_key_on_the_socket_is_still_refused(tmp_path: Path) -> None:
    app = write_secret_app(tmp_path / "app")
    with short_dir() as data:
        async with _service(app, data):
            conn = aiohttp.UnixConnector(path=str(admin_socket_path(data)))
            async with aiohttp.ClientSession(connector=conn) as session:
                body = {"path": "secrets:secret", "args": {}}
                headers = {"Authorization": "Convex not-the-key"}
                async with session.post(
                    "http://localhost/api/query", json=body, headers=headers
                ) as r:
                    assert r.status == 403 and (await r.json())["code"] == "BadAdminKey"


async def test_the_socket_is_0600_and_removed_at_stop(tmp_path: Path) -> None:
    app = write_secret_app(tmp_path / "app")
    with short_dir() as data:
        path = admin_socket_path(data)
        async with _service(app, data):
            found = path.stat()
            assert stat.S_ISSOCK(found.st_mode)
            assert stat.S_IMODE(found.st_mode) == 0o600
            assert found.st_uid == os.getuid()
        assert not path.exists()


async def test_a_socket_left_by_a_killed_process_is_replaced(tmp_path: Path) -> None:
    app = write_secret_app(tmp_path / "app")
    with short_dir() as data:
        path = admin_socket_path(data)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
            dead.bind(str(path))  # closed without unlinking: what a SIGKILL leaves
        async with _service(app, data):
            status, reply = await asyncio.to_thread(query_over_socket, data, "secrets:secret")
            assert status == 200 and reply["value"] == "only admins"
        assert not path.exists()


async def test_a_file_in_the_sockets_place_fails_the_start_and_is_kept(tmp_path: Path) -> None:
    app = write_secret_app(tmp_path / "app")
    with short_dir() as data:
        path = admin_socket_path(data)
        path.write_text("not a socket")
        with pytest.raises(StartError, match="admin socket: .* is not a socket; move it away"):
            await _service(app, data).start()
        assert path.read_text() == "not a socket"


async def test_a_data_dir_too_long_for_a_socket_serves_without_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = write_secret_app(tmp_path / "app")
    data = tmp_path / ("d" * MAX_SOCKET_PATH_BYTES)
    with caplog.at_level(logging.WARNING, logger="gateway.service"):
        async with _service(app, data) as service:
            assert not admin_socket_path(data).exists()
            reply = await _over_tcp(service.port, "secrets:hello", None)
            assert reply["value"] == "hello"
    assert "no admin socket" in caplog.text and "longer than a UNIX socket's 107" in caplog.text


def test_a_socket_another_process_accepts_on_is_not_taken_over() -> None:
    with short_dir() as data, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        path = admin_socket_path(data)
        live.bind(str(path))
        live.listen()
        with pytest.raises(OSError, match="another process accepts on"):
            bind_private(path)
        assert path.is_socket()


def test_a_path_too_long_is_refused_with_its_length(tmp_path: Path) -> None:
    path = tmp_path / ("s" * MAX_SOCKET_PATH_BYTES)
    with pytest.raises(PathTooLong, match=r"bytes, longer than a UNIX socket's 107"):
        bind_private(path)
    assert not path.exists()
