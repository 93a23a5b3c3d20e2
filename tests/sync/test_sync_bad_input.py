"""Bad input on the sync socket (issue 4 section 4): oversized frames, floods of
ModifyQuerySet, 10,000 subscriptions on one socket. Each ends in a clean close or a
clear FatalError, or is processed correctly; the other sockets never notice."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from sync.sync_kit import SyncApi, SyncClient, add

from gateway.sync.session import MAX_QUERIES
from gateway.sync.websocket import MAX_FRAME_BYTES


async def still_live(sync_api: SyncApi, client: SyncClient, query_id: int, topic: str) -> None:
    """``client`` (subscribed to ``notes:count`` on ``topic``) sees a new write."""
    before = client.results[query_id][1]
    await client.call("Mutation", "notes:add", {"topic": topic, "body": "still here"})
    await client.response("MutationResponse")
    assert client.results[query_id] == ("ok", before + 1)


async def test_sync_oversized_frame_closes_only_that_socket(sync_api: SyncApi) -> None:
    bystander = await sync_api.open()
    await bystander.modify(add(0, "notes:count", {"topic": "calm"}))
    await bystander.transition()
    client = await sync_api.open()
    await client.modify(add(0, "notes:count", {"topic": "big"}))
    await client.transition()
    # One frame over the limit (16 MiB + 2000 bytes): refused from its header, before it
    # is buffered, and the socket closed (1009, message too big; the sender may see the
    # connection drop before the close frame reaches it).
    with contextlib.suppress(ConnectionError):
        await client.ws.send_str("x" * (MAX_FRAME_BYTES + 1))
    msg = await client.ws.receive(timeout=10)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
    assert client.ws.closed
    if msg.type == aiohttp.WSMsgType.CLOSE:
        assert msg.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG, msg
    for _ in range(100):  # the server side notices on its next loop turns
        if len(sync_api.gateway.sync.sessions) == 1:
            break
        await asyncio.sleep(0.05)
    assert len(sync_api.gateway.sync.sessions) == 1
    await still_live(sync_api, bystander, 0, "calm")
    await bystander.close()


async def test_sync_modify_query_set_flood_is_processed_in_bounded_state(
    sync_api: SyncApi,
) -> None:
    bystander = await sync_api.open()
    await bystander.modify(add(0, "notes:count", {"topic": "calm"}))
    await bystander.transition()
    client = await sync_api.open()
    # 1,000 ModifyQuerySet back to back, each swapping the one subscription for a new one.
    await client.modify(add(0, "notes:count", {"topic": "t0"}))
    for i in range(1, 1000):
        await client.modify(
            add(i, "notes:count", {"topic": f"t{i}"}), {"type": "Remove", "queryId": i - 1}
        )
    # Rounds coalesce: far fewer Transitions than messages, each valid, ending at 1000
    # with exactly the last query subscribed.
    transitions = 0
    while client.version["querySet"] < 1000:
        await client.transition()
        transitions += 1
    assert transitions <= 1000
    assert client.results == {999: ("ok", 0.0)}
    (session,) = [s for s in sync_api.gateway.sync.sessions if s.subs.keys() == {999}]
    assert len(session.subs) == 1 and not session._removed  # noqa: SLF001 - state bounded
    assert len(sync_api.gateway.sync.index) == 2  # one subscription per socket indexed
    await still_live(sync_api, client, 999, "t999")
    await still_live(sync_api, bystander, 0, "calm")
    await client.close()
    await bystander.close()


async def test_sync_ten_thousand_subscriptions_then_a_clear_refusal(sync_api: SyncApi) -> None:
    assert MAX_QUERIES == 10_000
    bystander = await sync_api.open()
    await bystander.modify(add(0, "notes:count", {"topic": "calm"}))
    await bystander.transition()
    client = await sync_api.open()
    await client.modify(*(add(i, "notes:count", {"topic": f"t{i}"}) for i in range(MAX_QUERIES)))
    first = await client.transition(wait_s=60)
    assert len(first["modifications"]) == MAX_QUERIES
    assert all(client.results[i] == ("ok", 0.0) for i in range(MAX_QUERIES))
    # A write touching one of them reruns only that one.
    await client.call("Mutation", "notes:add", {"topic": "t1234", "body": "b"})
    _, after = await client.response("MutationResponse")
    assert [m["queryId"] for m in after["modifications"]] == [1234]
    await still_live(sync_api, bystander, 0, "calm")
    # One more: refused with a FatalError naming the limit, then the socket closes.
    await client.modify(add(MAX_QUERIES, "notes:count", {"topic": "over"}))
    fatal = await client.recv_type("FatalError")
    assert f"at most {MAX_QUERIES}" in fatal["error"]
    await client.closed()
    await still_live(sync_api, bystander, 0, "calm")
    assert len(sync_api.gateway.sync.index) == 1  # the refused socket's 10,000 are gone
    await bystander.close()
