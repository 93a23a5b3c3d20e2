"""HTTP actions on their own port: routing, answers, failures, auth, webhooks, CORS."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from auth.auth_issuer import AUDIENCE, SigningKey, data_url, jwks_of, sign
from http_actions_kit import HTTP, MESSAGES, SCHEMA, WEBHOOK_SECRET, Site, served_site

from gateway import Settings
from gateway.http.upload import LIMITS
from gateway.sync.auth import AuthenticationError


@pytest.fixture
async def site(make_app: Any, tmp_path: Path) -> AsyncIterator[Site]:
    app_dir = make_app(schema=SCHEMA, messages=MESSAGES, http=HTTP)
    async with served_site(app_dir, tmp_path / "data") as served:
        yield served


async def _get(site: Site, path: str, **kwargs: Any) -> tuple[int, str, Mapping[str, str]]:
    async with site.session.get(path, **kwargs) as resp:
        return resp.status, await resp.text(), resp.headers


# --- routing ------------------------------------------------------------------------------


async def test_json_echo(site: Site) -> None:
    async with site.session.post("/echo", json={"a": [1, 2], "b": "x"}) as resp:
        assert resp.status == 200
        assert await resp.json() == {"a": [1, 2], "b": "x"}


async def test_exact_path_beats_prefix(site: Site) -> None:
    assert (await _get(site, "/files/exact"))[:2] == (200, "exact")
    assert (await _get(site, "/files/exact/more"))[:2] == (200, "files /files/exact/more")


async def test_longest_prefix_wins(site: Site) -> None:
    assert (await _get(site, "/files/a.txt"))[:2] == (200, "files /files/a.txt")
    assert (await _get(site, "/files/deep/b.txt"))[:2] == (200, "deep /files/deep/b.txt")


async def test_method_mismatch_is_405_with_allow(site: Site) -> None:
    async with site.session.delete("/echo") as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"
    async with site.session.post("/files/x") as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "GET, HEAD"


async def test_unmatched_path_is_404_with_convex_text(site: Site) -> None:
    status, text, _ = await _get(site, "/nowhere")
    assert (status, text) == (404, "No HttpAction routed for /nowhere")
    assert (await _get(site, "/files"))[0] == 404  # the prefix is /files/, not /files


async def test_head_is_routed_as_get_without_body(site: Site) -> None:
    async with site.session.head("/files/exact") as resp:
        assert resp.status == 200
        assert await resp.read() == b""


# --- answers and failures -----------------------------------------------------------------


async def test_exception_is_500_with_trace_logged_not_sent(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="gateway.http.actions"):
        status, text, _ = await _get(site, "/boom")
    assert status == 500
    assert "ValueError" in text
    assert "detail" not in text and "Traceback" not in text and "http.py" not in text
    failures = [r for r in caplog.records if r.name == "gateway.http.actions"]
    assert failures and failures[0].exc_info is not None
    assert "GET /boom" in failures[0].getMessage()


async def test_wrong_return_type_is_500_saying_what_it_was(site: Site) -> None:
    status, text, _ = await _get(site, "/wrong")
    assert status == 500
    assert "returned a dict" in text and "web.Response" in text


async def test_streaming_response(site: Site) -> None:
    async with site.session.get("/stream") as resp:
        assert resp.status == 200
        chunks = [line async for line in resp.content]
    assert chunks == [b"chunk 0\n", b"chunk 1\n", b"chunk 2\n"]


async def test_exception_mid_stream_cuts_the_connection(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        async with site.session.get("/half") as resp:
            assert resp.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()  # never taken for the whole answer
        assert (await _get(site, "/files/exact"))[:2] == (200, "exact")  # others unharmed
    assert [r.name for r in caplog.records] == ["gateway.http.actions"]  # one trace


async def test_run_mutation_from_handler_and_log_lines(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.http.actions"):
        async with site.session.post("/send", data=b"hello") as resp:
            assert resp.status == 201
            doc_id = (await resp.json())["id"]
    assert isinstance(doc_id, str)
    assert await site.gateway.run_query("messages:list") == ["hello"]
    assert "POST /send: [LOG] stored hello" in caplog.messages


async def test_body_over_the_limit_is_413(site: Site) -> None:
    big = io.BytesIO(b"x" * (20 * 1024 * 1024 + 1))
    async with site.session.post("/echo", data=big) as resp:
        assert resp.status == 413
        assert "20 MiB" in (await resp.json())["message"]


async def test_body_past_the_shared_budget_is_503(make_app: Any, tmp_path: Path) -> None:
    app_dir = make_app(schema=SCHEMA, messages=MESSAGES, http=HTTP)
    settings = Settings(max_request_bytes_in_flight=1000)
    async with served_site(app_dir, tmp_path / "data", settings) as site:
        async with site.session.post("/echo", data=b"[" + b"1," * 600 + b"1]") as resp:
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "1"
        budget = site.api.app[LIMITS].budget
        assert site.site.app[LIMITS].budget is budget  # one budget for both ports
        assert budget.in_flight == 0


async def test_slow_clients_are_cut_as_on_the_api(make_app: Any, tmp_path: Path) -> None:
    app_dir = make_app(schema=SCHEMA, messages=MESSAGES, http=HTTP)
    settings = Settings(request_header_timeout_s=0.3, request_body_timeout_s=0.3)
    async with served_site(app_dir, tmp_path / "data", settings) as site:
        assert site.site.guard is site.api.guard  # one connection cap for both ports
        port = int(site.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: localhost\r\n")  # a head never finished
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing said
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n{")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]


# --- auth ---------------------------------------------------------------------------------


async def test_bearer_identity_reaches_ctx_auth(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def verify(token: str) -> Mapping[str, Any]:
        if token != "good":
            raise AuthenticationError("the token's signature does not match")
        return {"subject": "u1", "issuer": "https://issuer.test", "tokenIdentifier": "x|u1"}

    monkeypatch.setattr(site.gateway, "verify_token", verify)
    async with site.session.get("/whoami", headers={"Authorization": "Bearer good"}) as resp:
        assert resp.status == 200
        assert (await resp.json())["identity"]["subject"] == "u1"
    async with site.session.get("/whoami") as resp:
        assert (await resp.json()) == {"identity": None}
    async with site.session.get("/whoami", headers={"Authorization": "Bearer bad"}) as resp:
        assert resp.status == 401
        body = await resp.json()
    assert body["code"] == "Unauthenticated" and "signature" in body["message"]
    async with site.session.get("/whoami", headers={"Authorization": "Bearer "}) as resp:
        assert resp.status == 401
        assert (await resp.json())["code"] == "InvalidAuthHeader"


async def test_with_no_auth_provider_a_bearer_token_is_refused(site: Site) -> None:
    async with site.session.get("/whoami", headers={"Authorization": "Bearer a.b.c"}) as resp:
        assert resp.status == 401
        body = await resp.json()
    assert body["code"] == "NoAuthProvider" and body["message"]


async def test_other_authorization_schemes_reach_the_handler(site: Site) -> None:
    headers = {"Authorization": "Basic dXNlcjpwYXNz"}
    async with site.session.get("/whoami", headers=headers) as resp:
        assert resp.status == 200
        assert await resp.json() == {"identity": None}


# --- webhooks -----------------------------------------------------------------------------


async def test_webhook_hmac_over_raw_body(site: Site) -> None:
    raw = b'{"event":"pump.failed","at":1}'
    good = hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    async with site.session.post("/webhook", data=raw, headers={"X-Signature": good}) as resp:
        assert resp.status == 204
    async with site.session.post(
        "/webhook", data=raw + b" ", headers={"X-Signature": good}
    ) as resp:
        assert resp.status == 401
    assert await site.gateway.run_query("messages:list") == [raw.decode()]


# --- CORS ---------------------------------------------------------------------------------


async def test_cors_is_the_apps_own(site: Site) -> None:
    origin = "http://dashboard.local:8080"
    preflight = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, authorization",
    }
    async with site.session.options("/cors", headers=preflight) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == origin
        assert resp.headers["Access-Control-Allow-Credentials"] == "true"
        assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
        assert resp.headers["Vary"] == "Origin"
    async with site.session.post("/cors", json={"n": 1}, headers={"Origin": origin}) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == origin
        assert resp.headers.getall("Vary") == ["Origin"]
    # Nothing automatic: a route that sets no CORS headers gets none, preflight or not.
    async with site.session.options("/echo", headers=preflight) as resp:
        assert resp.status == 405
        assert "Access-Control-Allow-Origin" not in resp.headers
    async with site.session.post("/echo", json={}, headers={"Origin": origin}) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_api_port_answers_preflights_only_under_api(site: Site) -> None:
    preflight = {"Origin": "http://x.local", "Access-Control-Request-Method": "POST"}
    async with aiohttp.ClientSession(site.api_url) as api:
        async with api.options("/api/mutation", headers=preflight) as resp:
            assert resp.status == 200
            assert "POST" in resp.headers["Access-Control-Allow-Methods"]
        for path in ("/echo", "/health", "/anything/else"):
            async with api.options(path, headers=preflight) as resp:
                assert resp.status in (404, 405), path
                assert "Access-Control-Allow-Methods" not in resp.headers, path


# --- reloads ------------------------------------------------------------------------------


async def test_routes_follow_a_reload(site: Site) -> None:
    http_py = site.gateway.app_dir / "convex" / "http.py"
    http_py.write_text(
        "from aiohttp import web\n"
        "from gateway import http_action, http_router\n"
        "http = http_router()\n"
        "@http.route(path='/fresh', method='GET')\n"
        "@http_action\n"
        "async def fresh(ctx, request):\n"
        "    return web.Response(text='new code')\n"
    )
    await site.gateway.reload_app()
    assert (await _get(site, "/fresh"))[:2] == (200, "new code")
    assert (await _get(site, "/files/exact"))[0] == 404


async def test_a_real_jwt_identity_reaches_the_action(make_app: Any, tmp_path: Path) -> None:
    key = SigningKey.new("RS256")
    config = {
        "providers": [
            {
                "type": "customJwt",
                "issuer": "https://issuer.test",
                "jwks": data_url(jwks_of(key)),
                "algorithm": "RS256",
                "applicationID": AUDIENCE,
            }
        ]
    }
    app_dir = make_app(schema=SCHEMA, messages=MESSAGES, http=HTTP)
    (app_dir / "convex" / "auth.config.py").write_text(f"auth_config = {config!r}\n")
    token = sign(key, "https://issuer.test", subject="u42", email="u42@example.test")
    async with served_site(app_dir, tmp_path / "data") as site:
        headers = {"Authorization": f"Bearer {token}"}
        async with site.session.get("/whoami", headers=headers) as resp:
            assert resp.status == 200
            identity = (await resp.json())["identity"]
        assert identity["tokenIdentifier"] == "https://issuer.test|u42"
        assert identity["email"] == "u42@example.test"
        forged = sign(SigningKey.new("RS256"), "https://issuer.test", kid=key.kid)
        headers = {"Authorization": f"Bearer {forged}"}
        async with site.session.get("/whoami", headers=headers) as resp:
            assert resp.status == 401
