"""Slow and many clients: a request head has a deadline, connections have a cap."""

from __future__ import annotations

import asyncio
import resource
import time

import pytest

from gateway.http import protocol
from gateway.http.upload import LIMITS


async def closed_by_server(reader: asyncio.StreamReader, timeout_s: float = 10.0) -> bytes:
    """Everything the server sent until it closed the connection."""
    return await asyncio.wait_for(reader.read(), timeout_s)


async def wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


GET_HEALTH = b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"


async def test_a_slow_or_silent_head_is_closed(serve) -> None:
    api = await serve(request_header_timeout_s=0.3)
    started = time.monotonic()
    silent_r, silent_w = await asyncio.open_connection("127.0.0.1", api.port)
    slow_r, slow_w = await asyncio.open_connection("127.0.0.1", api.port)
    slow_w.write(b"GET /hea")
    assert (await api.session.get("/health")).status == 200  # others are served meanwhile
    assert await closed_by_server(silent_r) == b""
    assert await closed_by_server(slow_r) == b""
    assert time.monotonic() - started >= 0.3
    for writer in (silent_w, slow_w):
        writer.close()
    await wait_for(lambda: api.server.guard.open <= 1)  # the session's own connection


async def test_the_head_deadline_starts_again_with_each_request(serve) -> None:
    api = await serve(request_header_timeout_s=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    # A keep-alive connection idle between requests is not a slow head ...
    writer.write(GET_HEALTH)
    assert (await reader.readuntil(b'{"status": "ok"}')).startswith(b"HTTP/1.1 200 ")
    witness_r, witness_w = await asyncio.open_connection("127.0.0.1", api.port)
    assert await closed_by_server(witness_r) == b""  # a full head deadline went by
    writer.write(GET_HEALTH)
    assert (await reader.readuntil(b'{"status": "ok"}')).startswith(b"HTTP/1.1 200 ")
    # ... but a second head that stops half way is.
    writer.write(b"GET /health HTTP/1.1\r\nHo")
    assert await closed_by_server(reader) == b""
    writer.close()
    witness_w.close()


async def test_a_request_waiting_on_its_handler_is_not_cut(serve) -> None:
    api = await serve(request_header_timeout_s=0.2)
    body = b'{"path": "messages:list", "args": {}}'
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    head = f"POST /api/query HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n\r\n"
    writer.write(head.encode())
    witness_r, witness_w = await asyncio.open_connection("127.0.0.1", api.port)
    assert await closed_by_server(witness_r) == b""  # the head deadline went by
    writer.write(body)  # the body comes late; its own timeout is request_body_timeout_s
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
    writer.close()
    witness_w.close()


async def test_past_the_cap_a_new_connection_replaces_the_longest_silent(serve) -> None:
    api = await serve(max_connections=3)
    guard = api.server.guard
    held = []
    for count in (1, 2, 3):  # each waits for its head; the first has waited longest
        held.append(await asyncio.open_connection("127.0.0.1", api.port))
        await wait_for(lambda count=count: guard.open == count)
    async with api.session.get("/health") as resp:
        assert resp.status == 200
    assert guard.evicted == 1 and guard.refused == 0
    assert await closed_by_server(held[0][0]) == b""
    reader, writer = held[2]
    writer.write(GET_HEALTH)  # the others are still served
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
    for _, writer in held:
        writer.close()


async def test_past_the_cap_with_every_place_busy_a_connection_is_refused(serve) -> None:
    api = await serve(max_connections=2)
    guard = api.server.guard
    async with api.session.ws_connect("/api/sync"), api.session.ws_connect("/api/sync"):
        await wait_for(lambda: guard.open == 2)  # WebSockets count and are never evicted
        reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
        refusal = await closed_by_server(reader)
        writer.close()
        assert refusal.startswith(b"HTTP/1.1 503 ")
        assert b"Retry-After: 1" in refusal
        assert b'"TooManyConnections"' in refusal and b"max_connections" in refusal
        assert guard.open == 2 and guard.refused == 1
    await wait_for(lambda: guard.open == 0)
    async with api.session.get("/health") as resp:  # the freed places are usable again
        assert resp.status == 200


async def test_a_slow_body_gives_its_place_too(serve) -> None:
    api = await serve(max_connections=1)
    guard = api.server.guard
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    writer.write(b"POST /api/query HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n{")
    await wait_for(lambda: guard.open == 1 and api.server.app[LIMITS].budget.in_flight == 1000)
    async with api.session.get("/health") as resp:
        assert resp.status == 200
    assert guard.evicted == 1
    assert await closed_by_server(reader) == b""
    writer.close()
    await wait_for(lambda: api.server.app[LIMITS].budget.in_flight == 0)


def test_the_default_cap_stays_below_the_open_file_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    for soft, cap in [(1024, 768), (65536, 58983), (200, 16)]:
        monkeypatch.setattr(protocol.resource, "getrlimit", lambda _, s=soft: (s, s))
        assert protocol.default_max_connections() == cap
    monkeypatch.setattr(protocol.resource, "getrlimit", lambda _: (resource.RLIM_INFINITY,) * 2)
    assert protocol.default_max_connections() < 1 << 20


def test_refusals_warn_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    guard = protocol.ConnectionGuard(1, clock=lambda: now[0])
    assert guard.admit()  # and it never waits on its client: nothing to evict
    for _ in range(500):
        assert not guard.admit()
    now[0] = 61.0
    assert not guard.admit()
    warnings = [r.getMessage() for r in caplog.records if r.name == "gateway.http"]
    assert warnings == [
        "refused 1 new connection(s): 1 are open, the limit (max_connections)",
        "refused 500 new connection(s): 1 are open, the limit (max_connections)",
    ]
