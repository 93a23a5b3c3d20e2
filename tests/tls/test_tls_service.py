"""``tls = true``: the API, its sync WebSocket and HTTP actions over TLS with the local CA,
against aiohttp clients that verify (or do not have) the CA; the CA kept across starts."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509

from gateway import Settings
from gateway.errors import StartError
from gateway.service import Service
from gateway.tls.local_ca import certificate_names
from gateway.tls.renewal import keep_renewed

FNS = """
from gateway import mutation, query, v

@mutation(args={"n": v.float64()})
async def add(ctx, args):
    return await ctx.db.insert("items", {"n": args["n"]})

@query(args={})
async def count(ctx, args):
    return len(await ctx.db.query("items").collect())
"""

HTTP = """
from aiohttp import web
from gateway import http_action, http_router

http = http_router()

@http.route(path="/hello", method="GET")
@http_action
async def hello(ctx, request):
    return web.json_response({"scheme": request.scheme})
"""


@asynccontextmanager
async def serving(app: Path, data: Path, **settings: Any) -> AsyncIterator[Service]:
    values: dict[str, Any] = {"port": 0, "site_port": 0, "data_dir": str(data)}
    values |= {"mqtt_broker": "off", "discovery": False, "tls": True}
    service = Service(app, Settings(**(values | settings)))
    async with service:
        yield service


def trusting(data: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(data / "tls" / "ca.crt"))


@pytest.fixture
def app(make_app: Any) -> Path:
    return make_app(fns=FNS, http=HTTP)  # type: ignore[no-any-return]


async def test_the_api_sync_socket_and_actions_speak_https_verified_by_the_ca(
    app: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    async with serving(app, data) as service:
        assert service.scheme == "https"
        base = f"https://localhost:{service.port}"
        connector = aiohttp.TCPConnector(ssl=trusting(data))
        async with aiohttp.ClientSession(connector=connector) as client:
            call = {"path": "fns:add", "args": {"n": 1}, "format": "json"}
            async with client.post(f"{base}/api/mutation", json=call) as answer:
                assert (await answer.json())["status"] == "success"
            async with client.ws_connect(f"wss://127.0.0.1:{service.port}/api/1.21/sync") as ws:
                await ws.send_json(_connect_message())
                await ws.send_json(_subscribe("fns:count"))
                transition = await ws.receive_json(timeout=10)
                assert transition["type"] == "Transition", transition
                [added] = transition["modifications"]
                assert added["value"] == 1, transition
            site = f"https://localhost:{service.site_port}/hello"
            async with client.get(site) as answer:
                assert await answer.json() == {"scheme": "https"}


async def test_a_client_without_the_ca_is_refused_and_plain_http_gets_nothing(
    app: Path, tmp_path: Path
) -> None:
    async with serving(app, tmp_path / "data") as service, aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await client.get(f"https://localhost:{service.port}/health")
        with pytest.raises(aiohttp.ClientError):
            await client.get(f"http://127.0.0.1:{service.port}/health")


async def test_the_ca_persists_and_new_names_issue_a_new_server_cert(
    app: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    async with serving(app, data, allowed_hosts="first.farm.lan"):
        pass
    ca = (data / "tls" / "ca.crt").read_bytes()
    server = (data / "tls" / "server.crt").read_bytes()
    async with serving(app, data, allowed_hosts="first.farm.lan"):
        assert (data / "tls" / "server.crt").read_bytes() == server  # nothing changed
    async with serving(app, data, allowed_hosts="second.farm.lan") as service:
        names = certificate_names(x509.load_pem_x509_certificate(_read(data, "server.crt")))
        assert "second.farm.lan" in names and "first.farm.lan" not in names
        connector = aiohttp.TCPConnector(ssl=trusting(data))
        async with aiohttp.ClientSession(connector=connector) as client:
            # By address, verified under the new name (as a client that resolved it).
            name = "second.farm.lan"
            url = f"https://127.0.0.1:{service.port}/health"
            async with client.get(url, server_hostname=name, headers={"Host": name}) as answer:
                assert answer.status == 200
    assert (data / "tls" / "ca.crt").read_bytes() == ca


async def test_a_certificate_of_ones_own_is_served_and_a_bad_one_fails_the_start(
    app: Path, tmp_path: Path
) -> None:
    from gateway.tls import ensure_server_cert

    own = ensure_server_cert(tmp_path / "elsewhere", ["localhost"])
    async with serving(
        app, tmp_path / "data", tls_cert=str(own.cert), tls_key=str(own.key)
    ) as service:
        assert not (tmp_path / "data" / "tls").exists()  # no local CA made
        context = ssl.create_default_context(cafile=str(own.ca_cert))
        connector = aiohttp.TCPConnector(ssl=context)
        async with (
            aiohttp.ClientSession(connector=connector) as client,
            client.get(f"https://localhost:{service.port}/health") as answer,
        ):
            assert answer.status == 200
    missing = tmp_path / "missing.key"
    with pytest.raises(StartError, match=r"cannot start: http: tls_cert .* cannot be used"):
        async with serving(app, tmp_path / "data", tls_cert=str(own.cert), tls_key=str(missing)):
            pass


def _read(data: Path, name: str) -> bytes:
    return (data / "tls" / name).read_bytes()


def _subscribe(path: str) -> dict[str, Any]:
    add = {"type": "Add", "queryId": 0, "udfPath": path, "args": [{}]}
    return {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [add]}


def _connect_message() -> dict[str, Any]:
    return {
        "type": "Connect",
        "sessionId": "00000000-0000-4000-8000-000000000000",
        "connectionCount": 0,
        "lastCloseReason": None,
    }


async def test_a_renewed_certificate_is_served_without_a_restart(app: Path, tmp_path: Path) -> None:
    """The daily look (``keep_renewed``, here every 50 ms) finds a certificate issued for a
    new name: new handshakes present it, and the broker is told."""
    data = tmp_path / "data"
    async with serving(app, data, allowed_hosts="first.farm.lan") as service:
        assert service.tls is not None
        told: list[int] = []

        async def renewed() -> None:
            told.append(1)

        wanted = replace(service.settings, allowed_hosts="second.farm.lan")
        renewal = asyncio.create_task(keep_renewed(wanted, service.tls, renewed, interval_s=0.05))
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while "second.farm.lan" not in await _served_names(data, service.port):
                assert asyncio.get_running_loop().time() < deadline, "not renewed"
                await asyncio.sleep(0.05)
        finally:
            renewal.cancel()
        assert told == [1]  # once: the next looks found the same certificate


async def _served_names(data: Path, port: int) -> set[str]:
    """The names on the certificate the server presents to a new handshake."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=trusting(data), server_hostname="localhost"
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    return certificate_names(x509.load_der_x509_certificate(der))
