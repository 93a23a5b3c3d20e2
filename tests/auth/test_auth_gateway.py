"""User tokens through the gateway's ways in: HTTP API ``Bearer`` and sync ``Authenticate``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from auth.auth_app import write_app
from auth.auth_issuer import Issuer
from sync.sync_kit import SyncApi, add, serving

from gateway import Gateway


@pytest.fixture
async def api(issuer: Issuer, tmp_path: Path) -> AsyncIterator[SyncApi]:
    async with serving(write_app(tmp_path / "app", issuer.url), tmp_path / "data") as api:
        yield api


async def post_query(api: SyncApi, path: str, authorization: str | None) -> tuple[int, dict]:
    headers = {} if authorization is None else {"Authorization": authorization}
    body = {"path": path, "args": {}, "format": "json"}
    async with api.session.post("/api/query", json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_http_bearer_is_verified(api: SyncApi, issuer: Issuer) -> None:
    status, body = await post_query(api, "who:me", f"Bearer {issuer.sign(name='Ada')}")
    assert status == 200 and body["status"] == "success", body
    assert body["value"] == {
        "tokenIdentifier": f"{issuer.url}|user-1",
        "subject": "user-1",
        "issuer": issuer.url,
        "name": "Ada",
    }
    status, body = await post_query(api, "who:subject", None)
    assert (status, body["value"]) == (200, None)
    expired = issuer.sign(exp=int(time.time()) - 3600)
    status, body = await post_query(api, "who:me", f"bearer   {expired}")
    assert status == 401 and body["code"] == "Unauthenticated"
    assert body["message"].startswith("Could not verify OIDC token claim.")
    assert "the token expired at" in body["message"]
    assert await post_query(api, "who:me", "Bearer ") == (
        401,
        {"code": "InvalidAuthHeader", "message": "Header must begin with `bearer `"},
    )
    status, body = await post_query(api, "who:me", "Bearer x.y.z")
    assert (status, body["code"]) == (401, "InvalidAuthHeader")
    status, body = await post_query(api, "who:me", f"Bearer {issuer.sign(audience='other')}")
    assert (status, body["code"]) == (401, "NoAuthProvider")


async def test_sync_authenticate_accepts_and_refuses(api: SyncApi, issuer: Issuer) -> None:
    client = await api.open()
    await client.modify(add(0, "who:subject"))
    await client.transition()
    assert client.results[0] == ("ok", None)
    token = issuer.sign(subject="ada")
    await client.send(
        {"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": token}
    )
    confirmed = await client.transition()
    assert confirmed["endVersion"]["identity"] == 1 and client.results[0] == ("ok", "ada")
    request = await client.call("Mutation", "who:whoami", {})
    response, _ = await client.response("MutationResponse")
    assert (response["requestId"], response["result"]) == (request, f"{issuer.url}|ada")
    bad = issuer.sign(kid="rotated-away")
    await client.send({"type": "Authenticate", "baseVersion": 1, "tokenType": "User", "value": bad})
    refused = await client.recv_type("AuthError")
    assert refused["baseVersion"] == 1 and refused["authUpdateAttempted"] is True
    assert "no key with kid 'rotated-away'" in refused["error"]
    await client.closed()


async def test_sync_token_expiring_mid_session_ends_it_as_convex(
    api: SyncApi, issuer: Issuer
) -> None:
    client = await api.open()
    # Past its exp but within the 60 s leeway: accepted, and valid for about 1.5 s more.
    token = issuer.sign(exp=time.time() - 58.5)
    await client.send(
        {"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": token}
    )
    await client.modify(add(0, "who:subject"))
    await client.transition()
    assert client.results[0] == ("ok", "user-1")
    expired = await client.recv_type("AuthError", wait_s=10)
    assert expired["authUpdateAttempted"] is False and expired["baseVersion"] == 1
    assert "Token expired" in expired["error"]
    await client.closed()


async def test_sync_without_providers_says_so(tmp_path: Path, issuer: Issuer) -> None:
    async with serving(write_app(tmp_path / "app", None), tmp_path / "data") as api:
        client = await api.open()
        await client.send(
            {"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": issuer.sign()}
        )
        refused = await client.recv_type("AuthError")
        assert "configures no auth provider" in refused["error"]
        await client.closed()


async def test_offline_gateway_restart_keeps_the_saved_keys(
    tmp_path: Path, issuer: Issuer, caplog: pytest.LogCaptureFixture
) -> None:
    root, data = write_app(tmp_path / "app", issuer.url), tmp_path / "data"
    token = issuer.sign(subject="ada")
    async with Gateway.open(root, data) as gw:
        assert (await gw.verify_token(token))["subject"] == "ada"
    await issuer.stop()  # the uplink is gone, and the gateway restarts without it
    async with Gateway.open(root, data) as gw:
        assert (await gw.verify_token(token))["subject"] == "ada"
        await gw.auth.settled()  # the refresh tried behind the answer
    assert "cannot refresh the keys of issuer" in caplog.text
    assert "still accepting tokens signed by the JWKS cached before" in caplog.text
