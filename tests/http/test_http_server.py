"""The server around the API: lifecycle, readiness, CORS, ``//api``, stored files."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from gateway import Gateway
from gateway.http import HttpServer


async def raw_request(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client normalising the path); read the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def post(path: str, body: dict) -> bytes:
    data = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode() + data


async def test_repeated_slashes_are_folded_not_redirected(api) -> None:
    for path in ["//api/query", "///api//query", "//api/run/solo"]:
        status, _, body = await raw_request(api.port, post(path, {"path": "solo", "args": {}}))
        assert status == 200, (path, body)
        assert json.loads(body)["value"] == "the default export"
    status, _, body = await raw_request(api.port, post("//api/nope", {}))
    assert (status, json.loads(body)["code"]) == (404, "NotFound")
    get = b"GET //api/query HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    status, _, body = await raw_request(api.port, get.replace(b"query", b"mutation"))
    assert (status, json.loads(body)["code"]) == (405, "MethodNotAllowed")


async def test_cors_preflight_and_headers(api) -> None:
    headers = {
        "Origin": "http://dash.local:5173",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, authorization, convex-client",
    }
    async with api.session.options("/api/query", headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == "http://dash.local:5173"
        assert resp.headers["Access-Control-Allow-Credentials"] == "true"
        assert (
            resp.headers["Access-Control-Allow-Headers"]
            == "content-type, authorization, convex-client"
        )
        assert (
            resp.headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS, PATCH, DELETE, PUT"
        )
        assert resp.headers["Access-Control-Max-Age"] == "86400"
    origin = {"Origin": "http://dash.local:5173"}
    async with api.session.post("/api/query", json={"path": "solo"}, headers=origin) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == "http://dash.local:5173"
        assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    async with api.session.post("/api/query", data=b"{", headers=origin) as resp:  # errors too
        assert resp.status == 400
        assert resp.headers["Access-Control-Allow-Origin"] == "http://dash.local:5173"
    async with api.session.post("/api/query", json={"path": "solo"}) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_health(api) -> None:
    async with api.session.get("/health") as resp:
        assert (resp.status, await resp.json()) == (200, {"status": "ok"})
    async with api.session.get("/health/ready") as resp:
        assert (resp.status, await resp.json()) == (200, {"status": "ready", "disk": "ok"})


async def test_readiness_follows_the_gateway(app_dir, tmp_path) -> None:
    async with HttpServer(admin_key="k") as server:
        port = await server.start("127.0.0.1", 0)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            async with session.get("/health") as resp:
                assert resp.status == 200
            async with session.get("/health/ready") as resp:
                assert (resp.status, (await resp.json())["code"]) == (503, "NotReady")
            async with session.post("/api/query", json={"path": "solo"}) as resp:
                assert (resp.status, (await resp.json())["code"]) == (503, "NotReady")
            async with Gateway.open(app_dir, tmp_path / "data") as gw:
                server.attach(gw)
                async with session.get("/health/ready") as resp:
                    assert resp.status == 200
                async with session.post("/api/query", json={"path": "solo"}) as resp:
                    assert (await resp.json())["value"] == "the default export"
                async with session.post(
                    "/api/query",
                    json={"path": "messages:secret"},
                    headers={"Authorization": "Convex k"},
                ) as resp:
                    assert (await resp.json())["value"] == "s3cret"
                server.detach()
            async with session.get("/health/ready") as resp:
                assert resp.status == 503


async def test_close_is_idempotent_and_frees_the_port(api, app_dir, tmp_path) -> None:
    server = HttpServer(api.gateway)
    port = await server.start("127.0.0.1", 0)
    assert port > 0
    await server.close()
    await server.close()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        pass
    else:
        writer.close()
        await writer.wait_closed()
        raise AssertionError("the port still accepts connections")


async def test_closed_gateway_answers_503(app_dir, tmp_path) -> None:
    gw = await Gateway.start(app_dir, tmp_path / "data")
    async with HttpServer(gw) as server:
        port = await server.start("127.0.0.1", 0)
        await gw.close()
        async with (
            aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session,
            session.post("/api/query", json={"path": "solo"}) as resp,
        ):
            assert (resp.status, (await resp.json())["code"]) == (503, "Unavailable")


async def test_stored_file_is_served(api) -> None:
    data = bytes(range(256)) * 10
    args = {"data": {"$bytes": __import__("base64").b64encode(data).decode()}, "type": "image/png"}
    _, body = await api.post("/api/mutation", {"path": "messages:upload", "args": args})
    storage_id = body["value"]
    async with api.session.get(f"/api/storage/{storage_id}") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "image/png"
        assert resp.headers["Cache-Control"] == "private, max-age=2592000"
        assert await resp.read() == data
    _, body = await api.post(
        "/api/mutation", {"path": "messages:upload", "args": {"data": {"$bytes": ""}}}
    )
    async with api.session.get(f"/api/storage/{body['value']}") as resp:
        assert resp.headers["Content-Type"] == "application/octet-stream"
    _, body = await api.post("/api/mutation", {"path": "messages:send", "args": {"body": "x"}})
    for missing in ["nonsense", body["value"]]:  # not an id; an id of another table
        async with api.session.get(f"/api/storage/{missing}") as resp:
            assert (resp.status, (await resp.json())["code"]) == (404, "NotFound")
