"""Logs fit an SD card and never hold a secret: malformed requests carrying the admin
key, client disconnects, floods of one error."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time

import pytest

from gateway.log_limits import RateLimitFilter
from gateway.redact import REDACTED, forget_secret, redact, register_secret


async def exchange(port: int, raw: bytes) -> bytes:
    """Send raw bytes, read until the server closes (or 10 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def malformed_with(key: str) -> list[bytes]:
    k = key.encode()
    return [
        b"GET /api/query?adminKey=" + k + b"&path=x\x01 HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /api/query HTTP/1.1\r\nHost: localhost\r\nAuthorization: Convex "
        + k
        + b"\x01\r\n\r\n",
        b"GET /api/query?adminKey="
        + k
        + b" HTTP/1.1\nHost: localhost\nAuthorization: Convex "
        + k
        + b"\n\n",
        b"GET /api/query?adminKey=" + k + b"&pad=" + b"p" * 9000 + b" HTTP/1.1\r\n\r\n",
        b"GET /api/query HTTP/1.1\r\nConvex " + k + b": x\r\n\r\n",
        b"GET /api/query HTTP/1.1\r\nAuthorization: Convex " + k + b"\r\n\tfolded\r\n\r\n",
        b"G\x00T /api/query?adminKey=" + k + b" HTTP/1.1\r\n\r\n",
        b"GET /api/query HTTP/1.1\r\nContent-Length: " + k + b"\r\n\r\n",
    ]


async def test_malformed_requests_never_show_the_admin_key(
    api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for raw in malformed_with(api.admin_key):
        answer = await exchange(api.port, raw)
        assert answer.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 ")), (raw, answer)
        assert b'"BadRequest"' in answer
        assert api.admin_key.encode() not in answer
        assert api.admin_key[8:40].encode() not in answer  # not even a part of it
    assert api.admin_key[8:40] not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_custom_key_is_redacted_too(serve, caplog: pytest.LogCaptureFixture) -> None:
    key = "my-own-admin-key-1234"
    api = await serve(admin_key=key)
    caplog.set_level(logging.DEBUG)
    for raw in malformed_with(key):
        answer = await exchange(api.port, raw)
        assert key.encode() not in answer
    for path in [key, key + ":f", f"{key}/{key}"]:  # no such module (a 200 outcome)
        status, body = await api.post("/api/query", {"path": path, "args": {}})
        assert key not in str(body) and REDACTED in str(body), (status, body)
    status, body = await api.post("/api/query", {"path": f"x:{key}", "args": {}})
    assert (status, body["code"]) == (400, "BadConvexFunctionIdentifier")
    assert key not in str(body) and REDACTED in str(body)
    assert key not in caplog.text
    await api.server.close()
    assert redact(key) == key  # forgotten once its server closed


async def test_a_key_that_is_not_utf8_is_a_plain_403(api) -> None:
    raw = (
        b"POST /api/query HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"Authorization: Convex \xff\xfe" + api.admin_key.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 35\r\n\r\n"
        b'{"path": "messages:secret", "a": 1}'
    )
    answer = await exchange(api.port, raw)
    assert answer.startswith(b"HTTP/1.1 403 "), answer
    assert b'"BadAdminKey"' in answer and api.admin_key.encode() not in answer


async def test_a_client_leaving_mid_body_is_one_debug_line(
    api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    head = b"POST /api/query HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n"
    for _ in range(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
        writer.write(head + b"x" * 5000)
        await writer.drain()
        writer.transport.abort()
    deadline = time.monotonic() + 10
    while sum("client left" in r.getMessage() for r in caplog.records) < 5:
        assert time.monotonic() < deadline, caplog.text
        await asyncio.sleep(0.01)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_a_client_leaving_during_the_websocket_handshake_logs_no_error(
    api, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade = (
        b"GET /api/sync HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    for _ in range(20):
        _, writer = await asyncio.open_connection("127.0.0.1", api.port)
        writer.write(upgrade)
        writer.transport.abort()
    async with api.session.get("/health") as resp:
        assert resp.status == 200
    deadline = time.monotonic() + 10
    while api.server.guard.open > 1:  # every aborted socket went through the server
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_redact_hides_registered_and_key_shaped_secrets() -> None:
    register_secret("hunter2-secret")
    try:
        text = "a hunter2-secret b outpost-0123456789abcdef0123 c outpost-abc"
        assert redact(text) == f"a {REDACTED} b {REDACTED} c outpost-abc"
    finally:
        forget_secret("hunter2-secret")
    assert redact("hunter2-secret") == "hunter2-secret"


def test_redact_hides_pieces_of_a_secret() -> None:
    # Found by the fuzz soak: a path holding the key with one byte changed was echoed
    # in an error message, "outpost-" spoiled, so only the key's own text can tell.
    key = "outpost-" + "86608bcbe04111d04c1286da5e69bb6c30aad8c19edf6214fefa28aa0011"
    register_secret(key)
    try:
        spoiled = key[:5] + key[6:50] + "<" + key[50:]
        assert redact(f"no function {spoiled!r}") == f"no function 'outpo{REDACTED}<{REDACTED}'"
        assert redact(key[20:32] + " and " + key[-12:]) == f"{REDACTED} and {REDACTED}"
        assert redact(key[20:31]) == key[20:31]  # under 12 characters: no secret
    finally:
        forget_secret(key)


def test_a_flood_of_one_template_is_rate_limited() -> None:
    now = [0.0]
    limiter = RateLimitFilter(burst=3, interval_s=60, clock=lambda: now[0])

    def record(fd: int, level: int = logging.ERROR) -> logging.LogRecord:
        message = f"socket.accept() out of system resource\nsocket: <fd={fd}>"
        return logging.LogRecord("asyncio", level, __file__, 1, message, None, None)

    passed = [limiter.filter(record(fd)) for fd in range(1000)]
    assert sum(passed) == 3  # the fd numbers do not make lines different
    assert limiter.filter(record(1, logging.DEBUG))  # debug is never limited
    assert limiter.filter(logging.LogRecord("x", logging.ERROR, "", 1, "other", None, None))
    now[0] = 61.0
    summary = record(5)
    assert limiter.filter(summary)
    assert summary.getMessage().startswith("(suppressed 997 similar lines in the last 60 s)")


def test_outpost_logging_limits_floods_and_redacts(tmp_path) -> None:
    """``setup_logging`` (what `outpost serve` runs) on a real stderr."""
    script = (
        "import logging\n"
        "from gateway.cli.common import setup_logging\n"
        "setup_logging('info')\n"
        "log = logging.getLogger('asyncio')\n"
        "for fd in range(2000):\n"
        "    try:\n"
        "        raise OSError(24, 'Too many open files')\n"
        "    except OSError:\n"
        "        log.error('socket.accept() out of system resource\\nsocket: %d', fd, exc_info=True)\n"
        "logging.getLogger('gateway.http').warning('key outpost-' + 'ab' * 32 + ' leaked')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stderr.count("out of system resource") == 10
    assert len(done.stderr) < 20_000
    assert "outpost-abab" not in done.stderr and REDACTED in done.stderr
