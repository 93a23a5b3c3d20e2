"""The sync protocol over a raw aiohttp WebSocket client (wire spec 2.3-2.7)."""

from __future__ import annotations

import base64

from sync.sync_kit import SyncApi, add

ZERO_VERSION = {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}


def ts_of(encoded: str) -> int:
    raw = base64.b64decode(encoded)
    assert len(raw) == 8
    return int.from_bytes(raw, "little")


async def test_sync_subscribe_then_update_after_a_mutation(sync_api: SyncApi) -> None:
    client = await sync_api.open()
    await client.modify(add(0, "notes:bodies", {"topic": "t"}))
    first = await client.transition()
    assert first["startVersion"] == ZERO_VERSION
    assert first["endVersion"]["querySet"] == 1
    assert ts_of(first["endVersion"]["ts"]) == sync_api.gateway.store.clock.last_ts_ns
    assert first["modifications"] == [
        {"type": "QueryUpdated", "queryId": 0, "value": [], "logLines": [], "journal": None}
    ]
    await client.call("Mutation", "notes:add", {"topic": "t", "body": "hello"})
    response, after = await client.response("MutationResponse")
    assert response["success"] is True and response["requestId"] == 0
    assert isinstance(response["result"], str)  # the new id
    assert response["logLines"] == ["[LOG] adding hello"]
    # Read-your-writes: the Transition after the response is at or past its commit and
    # the subscription already holds the write.
    assert ts_of(after["endVersion"]["ts"]) >= ts_of(response["ts"])
    assert client.results[0] == ("ok", ["hello"])
    await client.close()


async def test_sync_unchanged_and_untouched_queries_are_not_resent(sync_api: SyncApi) -> None:
    client = await sync_api.open()
    await client.modify(
        add(0, "notes:count", {"topic": "a"}),
        add(1, "notes:count", {"topic": "b"}),
        add(2, "notes:whoami"),
    )
    first = await client.transition()
    assert [m["queryId"] for m in first["modifications"]] == [0, 1, 2]
    rounds = sync_api.gateway.sync.rounds
    await client.call("Mutation", "notes:add", {"topic": "a", "body": "x"})
    _, after = await client.response("MutationResponse")
    # Only the query whose read set holds the written key was rerun and resent.
    assert [m["queryId"] for m in after["modifications"]] == [0]
    assert client.results[0] == ("ok", 1.0) and client.results[1] == ("ok", 0.0)
    assert sync_api.gateway.sync.rounds == rounds + 1
    # A write outside every read set: the mutation's Transition carries nothing.
    await client.call("Mutation", "notes:add", {"topic": "zzz", "body": "y"})
    _, after = await client.response("MutationResponse")
    assert after["modifications"] == []
    await client.close()


async def test_sync_http_mutation_reaches_the_socket(sync_api: SyncApi) -> None:
    client = await sync_api.open("/api/sync")
    await client.modify(add(7, "notes:bodies", {"topic": "h"}))
    await client.transition()
    async with sync_api.session.post(
        "/api/mutation", json={"path": "notes:add", "args": {"topic": "h", "body": "via http"}}
    ) as resp:
        assert (await resp.json())["status"] == "success"
    await client.transition()
    assert client.results[7] == ("ok", ["via http"])
    await client.close()


async def test_sync_query_failed_then_updated(sync_api: SyncApi) -> None:
    client = await sync_api.open("//api/1.48.0/sync")
    await client.modify(add(0, "notes:strict", {"topic": "s"}), add(1, "notes:missing"))
    first = await client.transition()
    failed = first["modifications"][0]
    assert failed["type"] == "QueryFailed" and failed["errorData"] == {"code": "EMPTY"}
    assert failed["logLines"] == [] and failed["errorMessage"].startswith("Uncaught ConvexError")
    assert client.results[1] == (
        "error",
        "Could not find public function for 'notes:missing'.",
        None,
    )
    # A failed query keeps what it read: the insert it waited for reruns it.
    await client.call("Mutation", "notes:add", {"topic": "s", "body": "now"})
    await client.response("MutationResponse")
    assert client.results[0] == ("ok", "now")
    await client.modify({"type": "Remove", "queryId": 0})
    removed = await client.transition()
    assert removed["modifications"] == [{"type": "QueryRemoved", "queryId": 0}]
    assert removed["endVersion"]["querySet"] == 2
    await client.close()


async def test_sync_failed_mutation_and_action(sync_api: SyncApi) -> None:
    client = await sync_api.open()
    await client.modify()  # the empty 0 -> 1 that JS sends at connect is answered too
    answered = await client.transition()
    assert answered["endVersion"]["querySet"] == 1 and answered["modifications"] == []
    await client.call("Mutation", "notes:refuse", {})
    response, _ = await client.response("MutationResponse")
    assert response == {
        "type": "MutationResponse",
        "requestId": 0,
        "success": False,
        "result": 'Uncaught ConvexError: {"code":"NOPE"}',
        "ts": None,
        "logLines": [],
        "errorData": {"code": "NOPE"},
    }
    await client.call("Action", "notes:shout", {"text": "hey"})
    response, _ = await client.response("ActionResponse")
    assert response == {
        "type": "ActionResponse",
        "requestId": 1,
        "success": True,
        "result": "HEY",
        "logLines": [],
    }
    await client.close()


async def test_sync_version_mismatch_is_fatal(sync_api: SyncApi) -> None:
    client = await sync_api.open()
    await client.send(
        {"type": "ModifyQuerySet", "baseVersion": 3, "newVersion": 4, "modifications": []}
    )
    fatal = await client.recv_type("FatalError")
    assert fatal["error"] == "Base version 3 passed up doesn't match the current version 0"
    await client.closed()


async def test_sync_malformed_frames_are_fatal(sync_api: SyncApi) -> None:
    cases = [
        ("{not json", "not valid JSON"),
        ('["Connect"]', "must be a JSON object"),
        ('{"type":"Subscribe"}', 'unknown message type "Subscribe"'),
        ('{"type":"Mutation","requestId":-1,"udfPath":"notes:add","args":[{}]}', "requestId"),
        ('{"type":"ModifyQuerySet","baseVersion":0,"newVersion":0,"modifications":[]}', "greater"),
    ]
    for frame, expected in cases:
        client = await sync_api.open()
        await client.ws.send_str(frame)
        fatal = await client.recv_type("FatalError")
        assert expected in fatal["error"], (frame, fatal)
        await client.closed()
    # Anything before Connect, and binary frames.
    client = await sync_api.open(connect=False)
    await client.modify()
    assert "first message must be Connect" in (await client.recv_type("FatalError"))["error"]
    await client.closed()
    client = await sync_api.open()
    await client.ws.send_bytes(b"\x00\x01")
    assert "binary frames" in (await client.recv_type("FatalError"))["error"]
    await client.closed()
    # The gateway still serves a new socket.
    client = await sync_api.open()
    await client.modify(add(0, "notes:count", {"topic": "ok"}))
    await client.transition()
    assert client.results[0] == ("ok", 0.0)
    await client.close()


async def test_sync_authenticate_admin_none_and_user(sync_api: SyncApi) -> None:
    client = await sync_api.open()
    await client.modify(add(0, "notes:secret"))
    await client.transition()
    assert client.results[0][0] == "error"  # internal: not for anonymous callers
    await client.send(
        {
            "type": "Authenticate",
            "baseVersion": 0,
            "tokenType": "Admin",
            "value": sync_api.admin_key,
        }
    )
    confirmed = await client.transition()
    assert confirmed["endVersion"]["identity"] == 1
    assert client.results[0] == ("ok", "s3cret")  # every query reran as the admin
    await client.send({"type": "Authenticate", "baseVersion": 1, "tokenType": "None"})
    cleared = await client.transition()
    assert cleared["endVersion"]["identity"] == 2 and client.results[0][0] == "error"
    await client.send({"type": "Event", "eventType": "ClientConnect", "event": {}})
    await client.send(
        {"type": "Authenticate", "baseVersion": 2, "tokenType": "User", "value": "a.b.c"}
    )
    refused = await client.recv_type("AuthError")
    assert refused["baseVersion"] == 2 and refused["authUpdateAttempted"] is True
    assert "No auth provider found" in refused["error"]
    await client.closed()
    client = await sync_api.open()
    await client.send(
        {"type": "Authenticate", "baseVersion": 0, "tokenType": "Admin", "value": "wrong"}
    )
    assert "admin key" in (await client.recv_type("AuthError"))["error"]
    await client.closed()


async def test_sync_ping_after_silence(sync_api: SyncApi) -> None:
    sync_api.gateway.sync.ping_after_s = 0.2
    client = await sync_api.open()
    assert await client.recv(wait_s=5) == {"type": "Ping"}
    await client.close()


async def test_sync_gateway_close_closes_open_sockets(sync_api: SyncApi) -> None:
    client = await sync_api.open()
    await client.modify(add(0, "notes:count", {"topic": "c"}))
    await client.transition()
    await sync_api.gateway.sync.close()
    await client.closed()
    assert not sync_api.gateway.sync.sessions
    assert len(sync_api.gateway.sync.index) == 0


async def test_sync_subscriptions_rerun_after_the_app_is_reloaded(
    sync_api: SyncApi, sync_app
) -> None:
    client = await sync_api.open()
    await client.modify(add(0, "notes:count", {"topic": "r"}))
    await client.transition()
    assert client.results[0] == ("ok", 0.0)
    module = sync_app / "convex" / "notes.py"
    source = module.read_text()
    module.write_text(source + "\n\n@query\nasync def count(ctx, args):\n    return 42.0\n")
    await sync_api.gateway.reload_app()
    await client.transition()
    assert client.results[0] == ("ok", 42.0)
    await client.close()
