"""A socket's query bytes are capped, and so are all sockets' together; a closed session
is freed at once; client text that is not valid Unicode is refused plainly (issue 8,
sections 2 and 4).

30 subscriptions with 10 MB arguments on one socket once took a gateway to 1.34 GB
(``bench/hostile_sync.py`` reproduces it against a real ``outpost serve``)."""

from __future__ import annotations

import gc
import json
import logging
import os
import socket
import struct
import weakref
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sync.hostile_kit import bystander, still_live, until
from sync.sync_kit import SyncApi, SyncClient, add, serving

from gateway import Settings
from gateway.sync import websocket
from gateway.sync.engine import MAX_TOTAL_QUERY_BYTES
from gateway.sync.protocol import ProtocolError
from gateway.sync.session import MAX_QUERY_BYTES, SyncSession

LIMIT = 1_000_000
BIG = 300_000  # three fit under LIMIT, four do not


def big_add(query_id: int) -> dict[str, Any]:
    return add(query_id, "notes:count", {"topic": f"{query_id}:" + "x" * BIG})


def only_session(api: SyncApi, client_count: int) -> SyncSession:
    (session,) = [s for s in api.gateway.sync.sessions if len(s.subs) == client_count]
    return session


def test_sync_the_default_cap_is_the_settings_default() -> None:
    assert MAX_QUERY_BYTES == Settings().max_socket_query_bytes == 16 * 1024 * 1024


async def test_sync_query_bytes_past_the_setting_get_a_fatal_error(
    sync_app: Path, tmp_path: Path
) -> None:
    settings = Settings(max_socket_query_bytes=LIMIT)
    async with serving(sync_app, tmp_path / "data", settings) as api:
        calm = await bystander(api)
        client = await api.open()
        await client.modify(*(big_add(i) for i in range(3)))
        await client.transition()
        session = only_session(api, 3)
        assert 3 * BIG < session.query_bytes <= LIMIT
        # Removing queries gives their bytes back: two more fit again.
        await client.modify({"type": "Remove", "queryId": 0}, {"type": "Remove", "queryId": 1})
        await client.transition()
        assert BIG < session.query_bytes < 2 * BIG
        await client.modify(big_add(3), big_add(4))
        await client.transition()
        assert set(client.results) == {2, 3, 4}
        # One more passes the cap: FatalError naming the limit and the setting, then close.
        await client.modify(big_add(5))
        fatal = await client.recv_type("FatalError")
        assert f"at most {LIMIT}" in fatal["error"], fatal
        assert "max_socket_query_bytes" in fatal["error"], fatal
        await client.closed()
        await until(lambda: len(api.gateway.sync.sessions) == 1, "the refused session ends")
        assert len(api.gateway.sync.index) == 1  # only the bystander's query is indexed
        await still_live(calm)
        await calm.close()


async def fatal_close(client: SyncClient) -> None:
    """The server ends the session: a query set past the cap."""
    await client.modify(*(big_add(i) for i in range(3, 7)))
    await client.recv_type("FatalError")
    await client.closed()


async def client_close(client: SyncClient) -> None:
    await client.close()


@pytest.mark.parametrize("ending", [client_close, fatal_close], ids=["client", "fatal"])
async def test_sync_a_closed_session_is_freed_without_a_garbage_collection(
    sync_app: Path, tmp_path: Path, ending: Any
) -> None:
    """Its subscriptions (arguments and all) and the session itself go the moment the
    socket's handler returns: reference counting frees them, no cycle waits for the
    collector (which runs on object counts and may not come for a long time)."""
    settings = Settings(max_socket_query_bytes=LIMIT)
    async with serving(sync_app, tmp_path / "data", settings) as api:
        client = await api.open()
        await client.modify(*(big_add(i) for i in range(3)))
        await client.transition()
        session = only_session(api, 3)
        refs = [weakref.ref(session), *(weakref.ref(s) for s in session.subs.values())]
        del session
        gc.collect()
        gc.disable()
        try:
            await ending(client)
            await until(lambda: not api.gateway.sync.sessions, "the session ends")
            await until(lambda: all(r() is None for r in refs), "session and queries freed", 5)
        finally:
            gc.enable()


# --- the budget of all sockets together (``max_total_query_bytes``) -------------------

TOTAL = 1_000_000
SHARE = 400_000  # two sockets of one such query fit under TOTAL, three do not


def share_add(query_id: int, topic: str) -> dict[str, Any]:
    return add(query_id, "notes:count", {"topic": f"{topic}:" + "x" * SHARE})


async def holder(api: SyncApi, topic: str) -> SyncClient:
    """A client holding one query of SHARE bytes (query id 0), its first result in."""
    client = await api.open()
    await client.modify(share_add(0, topic))
    await client.transition()
    assert client.results[0] == ("ok", 0.0)
    return client


async def writes_and_sees(client: SyncClient, topic: str) -> None:
    """``client`` (from ``holder``) writes to its topic and sees the count move."""
    before = client.results[0][1]
    body = {"topic": f"{topic}:" + "x" * SHARE, "body": "b"}
    await client.call("Mutation", "notes:add", body)
    await client.response("MutationResponse")
    assert client.results[0] == ("ok", before + 1)


def total_refusal(held: int) -> str:
    return (
        f"the gateway holds {held} bytes of subscriptions on all sockets already (at most "
        f"{TOTAL}, the setting max_total_query_bytes), no room for a query of "
    )


def test_sync_the_default_total_is_the_settings_default() -> None:
    assert MAX_TOTAL_QUERY_BYTES == Settings().max_total_query_bytes == 64 * 1024 * 1024


async def test_sync_query_bytes_past_the_total_get_the_socket_that_passes_it_a_fatal_error(
    sync_app: Path, tmp_path: Path
) -> None:
    """Each socket is far below its own cap; the third one's query passes the total.
    It alone is refused (and reserves nothing); the first two go on as before."""
    settings = Settings(max_total_query_bytes=TOTAL)
    async with serving(sync_app, tmp_path / "data", settings) as api:
        engine = api.gateway.sync
        first, second = await holder(api, "a"), await holder(api, "b")
        held = engine.query_bytes
        assert 2 * SHARE < held <= TOTAL
        assert held == sum(s.query_bytes for s in engine.sessions)
        third = await api.open()
        await third.modify(share_add(0, "c"))
        fatal = await third.recv_type("FatalError")
        assert fatal["error"].startswith(total_refusal(held)), fatal
        assert fatal["error"].endswith("; retry later or subscribe to smaller queries"), fatal
        assert engine.query_bytes == held  # the refused query was never counted
        await third.closed()
        await until(lambda: len(engine.sessions) == 2, "the refused session ends")
        assert engine.query_bytes == held
        await writes_and_sees(first, "a")
        await writes_and_sees(second, "b")
        await first.close()
        await second.close()


async def test_sync_a_closed_or_shrunk_query_set_gives_the_total_its_bytes_back(
    sync_app: Path, tmp_path: Path
) -> None:
    settings = Settings(max_total_query_bytes=TOTAL)
    async with serving(sync_app, tmp_path / "data", settings) as api:
        engine = api.gateway.sync
        first, second = await holder(api, "a"), await holder(api, "b")
        await first.close()
        await until(lambda: engine.query_bytes < 2 * SHARE, "the closed socket's bytes back")
        third = await holder(api, "c")  # fits again
        # Removing a query gives its bytes back too: ``second`` takes a new one.
        await third.modify({"type": "Remove", "queryId": 0})
        await third.transition()
        await second.modify(share_add(1, "d"))
        await second.transition()
        assert second.results[1] == ("ok", 0.0)
        assert engine.query_bytes == sum(s.query_bytes for s in engine.sessions)
        await second.close()
        await third.close()


class Nowhere:
    """A ``Transport`` that takes every frame and drops it."""

    async def send(self, frame: bytes) -> None:
        pass

    def ready(self, size: int) -> bool:
        return True

    async def close(self, code: int, reason: str) -> None:
        pass


def modify_frame(*mods: dict[str, Any]) -> str:
    return json.dumps(
        {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": mods}
    )


CONNECT = json.dumps(
    {"type": "Connect", "sessionId": "5a9c1c2e-3f0e-4b8e-9a51-6f3c8a4d2b10", "connectionCount": 0}
)
# The socket's cap for a session that adds 2 x SHARE and a little, next to another
# socket's SHARE (so past the total), and the limit it is refused by.
REFUSED_TOGETHER = {
    "socket": (500_000, "max_socket_query_bytes"),  # past both: the socket's own is named
    "total": (900_000, "max_total_query_bytes"),  # past the total only
}


@pytest.mark.parametrize("socket_cap, setting", REFUSED_TOGETHER.values(), ids=REFUSED_TOGETHER)
async def test_sync_a_refused_modify_query_set_keeps_nothing_reserved(
    sync_app: Path, tmp_path: Path, socket_cap: int, setting: str
) -> None:
    """Adds (and a Remove) ahead of the refused Add in the same ModifyQuerySet are
    undone on the spot, not only when the socket has closed (a FatalError may wait on
    its peer for seconds)."""
    settings = Settings(max_socket_query_bytes=socket_cap, max_total_query_bytes=TOTAL)
    async with serving(sync_app, tmp_path / "data", settings) as api:
        engine = api.gateway.sync
        other = await holder(api, "a")
        held = engine.query_bytes
        session = engine.open_session(Nowhere(), admin_key=None, max_query_bytes=socket_cap)
        try:
            await session.receive(CONNECT)
            small = add(0, "notes:count", {"topic": "t"})
            mods = [small, {"type": "Remove", "queryId": 0}, small]
            mods += [share_add(1, "b"), share_add(2, "c")]
            with pytest.raises(ProtocolError, match=setting):
                await session.receive(modify_frame(*mods))
            assert (session.subs, session.query_bytes) == ({}, 0)
            assert engine.query_bytes == held
        finally:
            await session.close()
        assert engine.query_bytes == held
        await other.close()


async def test_sync_the_total_is_zero_once_every_socket_closed_however_it_closed(
    sync_app: Path, tmp_path: Path
) -> None:
    """A clean close, a FatalError from either limit, a dropped connection, and the
    gateway's shutdown with sockets still open each give every byte back."""
    settings = Settings(max_socket_query_bytes=500_000, max_total_query_bytes=TOTAL)
    async with serving(sync_app, tmp_path / "data", settings) as api:
        engine = api.gateway.sync
        clean = await holder(api, "clean")
        await clean.close()
        await until(lambda: engine.query_bytes == 0, "a clean close gives back")
        past_own = await holder(api, "own")
        await past_own.modify(share_add(1, "own"))  # 2 x SHARE: past its own 500 kB
        assert "max_socket_query_bytes" in (await past_own.recv_type("FatalError"))["error"]
        await past_own.closed()
        await until(lambda: engine.query_bytes == 0, "a FatalError (the socket's cap)")
        dropped = await holder(api, "dropped")
        drop(dropped)
        await dropped.close()
        await until(lambda: engine.query_bytes == 0, "a dropped connection gives back")
        kept = [await holder(api, "a"), await holder(api, "b")]
        past_total = await api.open()
        await past_total.modify(share_add(0, "c"))
        assert "max_total_query_bytes" in (await past_total.recv_type("FatalError"))["error"]
        await past_total.closed()
        await until(lambda: len(engine.sessions) == 2, "a FatalError (the total)")
        assert 2 * SHARE < engine.query_bytes <= TOTAL
    # The gateway stopped with ``kept`` open: its shutdown closed them.
    assert not engine.sessions
    assert engine.query_bytes == 0
    for client in kept:
        await client.close()


async def test_sync_an_admin_key_that_is_not_unicode_gets_an_auth_error(
    sync_api: SyncApi,
) -> None:
    calm = await bystander(sync_api)
    client = await sync_api.open()
    # "\ud800" in JSON: a lone surrogate, which UTF-8 cannot encode.
    await client.ws.send_str(
        '{"type":"Authenticate","baseVersion":0,"tokenType":"Admin","value":"k\\ud800"}'
    )
    refusal = await client.recv_type("AuthError")
    assert "admin key is not this gateway's" in refusal["error"], refusal
    assert refusal["baseVersion"] == 0
    msg = await client.closed()
    assert msg.data == 1000, msg
    await still_live(calm)
    await calm.close()


BAD_UNICODE = {
    "path of a query": '{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":'
    '[{"type":"Add","queryId":0,"udfPath":"notes:co\\ud800unt","args":[{}]}]}',
    "journal": '{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":'
    '[{"type":"Add","queryId":0,"udfPath":"notes:count","args":[{"topic":"t"}],'
    '"journal":"\\udfff"}]}',
    "path of a mutation": '{"type":"Mutation","requestId":0,"udfPath":"notes:a\\udc00dd",'
    '"args":[{}]}',
    "path of an action": '{"type":"Action","requestId":0,"udfPath":"notes:\\ud83dshout",'
    '"args":[{"text":"a"}]}',
    "impersonated identity": '{"type":"Authenticate","baseVersion":0,"tokenType":"Admin",'
    '"value":"k","impersonating":{"subject":"\\ud800"}}',
}


@pytest.mark.parametrize("frame", BAD_UNICODE.values(), ids=BAD_UNICODE.keys())
async def test_sync_a_lone_surrogate_gets_a_fatal_error_and_nobody_else_notices(
    sync_api: SyncApi, frame: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a lone surrogate in a query's path or journal failed the whole round
    (every socket in it was closed with 1011); in a mutation's path it killed the
    socket's mutation task and left the client waiting forever."""
    caplog.set_level(logging.DEBUG, logger="gateway")
    calm = await bystander(sync_api)
    client = await sync_api.open()
    await client.ws.send_str(frame)
    fatal = await client.recv_type("FatalError")
    assert "not valid Unicode" in fatal["error"], fatal
    await client.closed()
    await still_live(calm)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    await calm.close()


async def test_sync_escaped_surrogate_pairs_are_fine(sync_api: SyncApi) -> None:
    client = await sync_api.open()
    # ``client.send`` uses Python's json, which escapes every non-ASCII character: the
    # emoji goes as the escaped pair "\ud83c\udf31", which is valid.
    await client.modify(add(0, "notes:count", {"topic": "🌱"}))
    await client.transition()
    assert client.results[0] == ("ok", 0.0)
    await client.close()


async def test_sync_finished_sockets_leave_no_cycles_for_the_collector(
    sync_api: SyncApi,
) -> None:
    """aiohttp leaves each WebSocket connection in reference cycles (its protocol keeps
    the socket's data callback; a drop keeps an exception whose traceback holds the
    socket's frames): ~55 objects a connection, the request and the socket among them,
    waiting for a full collection. The handler breaks them; asyncio's transport (7
    objects) is all that is left for the collector."""
    connections = 20
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds stays in gc.garbage
    try:
        for i in range(connections):
            client = await sync_api.open()
            await client.modify(add(0, "notes:count", {"topic": "t"}))
            await client.transition()
            if i % 2:  # a drop: no close frame, the connection ends under the server
                drop(client)
            await client.close()
            await until(lambda: not sync_api.gateway.sync.sessions, "the session ends")
        gc.collect()
        server_side = Counter(
            type(o).__name__
            for o in gc.garbage
            if isinstance(o, web.WebSocketResponse | web.Request | web.RequestHandler)
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not server_side, f"in cycles: {dict(server_side)}"


def drop(client: SyncClient) -> None:
    """End ``client``'s connection without a close frame (FIN now, RST on close)."""
    raw = client.ws.get_extra_info("socket")
    sock = socket.socket(fileno=os.dup(raw.fileno()))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()


async def test_sync_a_socket_that_sent_megabyte_frames_gives_the_heap_back(
    sync_api: SyncApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """glibc keeps freed megabyte blocks in its heap (30 sockets of one 10 MB query:
    897 MB RssAnon after they closed; ``bench/hostile_sync.py --sockets 30``): a socket
    that sent such frames trims the heap when it ends, others do not."""
    trims: list[None] = []
    monkeypatch.setattr(websocket, "_give_back_memory", lambda: trims.append(None))
    small = await sync_api.open()
    await small.modify(add(0, "notes:count", {"topic": "t"}))
    await small.transition()
    await small.close()
    big = await sync_api.open()
    await big.modify(add(0, "notes:count", {"topic": "x" * websocket.TRIM_AFTER_FRAME_BYTES}))
    await big.transition()
    await big.close()
    await until(lambda: not sync_api.gateway.sync.sessions and len(trims) > 0, "sessions end")
    assert len(trims) == 1
    assert websocket._malloc_trim() is not None  # noqa: SLF001 - glibc here (Debian)


async def test_sync_a_closed_socket_is_not_kept_by_its_ping_timer(sync_api: SyncApi) -> None:
    """Data arriving after a close (the peer's close frame) re-armed aiohttp's
    protocol-ping timer, which then kept the closed socket with its request and buffers
    for 20 s: under churn, 20 s worth of dead connections (fuzz soak: +83 MB)."""
    for i in range(20):
        client = await sync_api.open()
        if i % 2:
            await client.send({"type": "Nonsense"})  # FatalError, the server closes
            await client.recv_type("FatalError")
        await client.close()
    await until(lambda: not sync_api.gateway.sync.sessions, "the sessions end")
    gc.collect()
    await until(lambda: not live_server_sockets(), "no closed socket kept alive", 2)


def live_server_sockets() -> list[web.WebSocketResponse]:
    return [o for o in gc.get_objects() if type(o) is web.WebSocketResponse]
