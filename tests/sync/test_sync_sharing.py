"""Identical subscriptions share one execution and one encoding, across sockets."""

from __future__ import annotations

import asyncio

import pytest
from sync.sync_kit import SyncApi, SyncClient, add

from gateway.sync import protocol


async def subscribed(sync_api: SyncApi, *mods: dict) -> SyncClient:
    client = await sync_api.open()
    await client.modify(*mods)
    await client.transition()
    return client


async def test_identical_subscriptions_on_many_sockets_run_once_per_change(
    sync_api: SyncApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    same = [await subscribed(sync_api, add(0, "notes:bodies", {"topic": "t"})) for _ in range(5)]
    other = await subscribed(sync_api, add(3, "notes:bodies", {"topic": "u"}))
    engine = sync_api.gateway.sync
    encoded: list[object] = []
    real = protocol.value_json
    monkeypatch.setattr(protocol, "value_json", lambda v: encoded.append(v) or real(v))
    executions = engine.executions

    await sync_api.gateway.run_mutation("notes:add", {"topic": "t", "body": "one"})
    for client in same:
        await client.transition()
        assert client.results[0] == ("ok", ["one"])
    # Five sockets, one query: executed once and its value encoded once.
    assert engine.executions - executions == 1
    assert encoded == [["one"]]

    await sync_api.gateway.run_mutation("notes:add", {"topic": "u", "body": "two"})
    await other.transition()
    assert other.results[3] == ("ok", ["two"])
    assert engine.executions - executions == 2  # the other query ran once, alone
    for client in [*same, other]:
        await client.close()


async def test_different_identities_do_not_share_an_execution(sync_api: SyncApi) -> None:
    anonymous = await subscribed(sync_api, add(0, "notes:whoami"))
    admin = await sync_api.open()
    await admin.send(
        {
            "type": "Authenticate",
            "tokenType": "Admin",
            "value": sync_api.admin_key,
            "baseVersion": 0,
            "impersonating": {"subject": "ada"},
        }
    )
    await admin.modify(add(0, "notes:whoami"))
    while admin.results.get(0) != ("ok", "ada"):
        await admin.transition()
    assert anonymous.results[0] == ("ok", None)
    await anonymous.close()
    await admin.close()


async def test_each_socket_gets_its_own_query_ids_and_versions(sync_api: SyncApi) -> None:
    a = await subscribed(sync_api, add(7, "notes:count", {"topic": "s"}))
    b = await subscribed(
        sync_api, add(1, "notes:bodies", {"topic": "s"}), add(2, "notes:count", {"topic": "s"})
    )
    await sync_api.gateway.run_mutation("notes:add", {"topic": "s", "body": "x"})
    ta, tb = await asyncio.gather(a.transition(), b.transition())
    assert [m["queryId"] for m in ta["modifications"]] == [7]
    assert [m["queryId"] for m in tb["modifications"]] == [1, 2]
    assert a.results[7] == b.results[2] == ("ok", 1.0)
    await a.close()
    await b.close()
