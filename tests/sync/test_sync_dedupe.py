"""Mutations deduped by (sessionId, requestId) across reconnects (wire spec 2.7/2.8)."""

from __future__ import annotations

import uuid
from pathlib import Path

from sync.sync_kit import SyncApi, SyncClient, add

from gateway import Gateway
from gateway.runtime import session_requests
from gateway.store import Transaction


async def _connect(sync_api: SyncApi, session_id: str, count: int) -> SyncClient:
    client = await sync_api.open(connect=False)
    await client.send(
        {
            "type": "Connect",
            "sessionId": session_id,
            "connectionCount": count,
            "lastCloseReason": "InitialConnect" if count == 0 else "unknown",
            "clientTs": 0,
        }
    )
    return client


async def test_sync_replayed_mutation_on_a_new_socket_is_applied_once(sync_api: SyncApi) -> None:
    session_id = str(uuid.uuid4())
    first = await _connect(sync_api, session_id, 0)
    await first.call("Mutation", "notes:add", {"topic": "d", "body": "once"})
    original, _ = await first.response("MutationResponse")
    assert original["success"] is True
    await first.close()

    # The npm client's reconnect: same sessionId, the query set, then the same Mutation.
    second = await _connect(sync_api, session_id, 1)
    await second.modify(add(0, "notes:count", {"topic": "d"}))
    await second.transition()
    assert second.results[0] == ("ok", 1.0)
    await second.call("Mutation", "notes:add", {"topic": "d", "body": "once"})  # requestId 0
    replayed, after = await second.response("MutationResponse")
    assert replayed["success"] is True and replayed["requestId"] == 0
    assert replayed["result"] == original["result"]  # the same new document id
    assert replayed["ts"] == original["ts"]  # the original commit ts
    assert replayed["logLines"] == []  # it did not run again
    assert second.results[0] == ("ok", 1.0)
    assert after["type"] == "Transition"  # the Python client resolves on it

    # A later request of the same session is new and does run.
    await second.call("Mutation", "notes:add", {"topic": "d", "body": "twice"})
    fresh, _ = await second.response("MutationResponse")
    assert fresh["result"] != original["result"]
    assert second.results[0] == ("ok", 2.0)
    await second.close()


async def test_sync_same_request_id_in_another_session_runs(sync_api: SyncApi) -> None:
    a = await _connect(sync_api, str(uuid.uuid4()), 0)
    b = await _connect(sync_api, str(uuid.uuid4()), 0)
    await b.modify(add(0, "notes:count", {"topic": "e"}))
    await b.transition()
    await a.call("Mutation", "notes:add", {"topic": "e", "body": "a"})
    await a.response("MutationResponse")
    await b.call("Mutation", "notes:add", {"topic": "e", "body": "b"})
    await b.response("MutationResponse")
    assert b.results[0] == ("ok", 2.0)
    await a.close()
    await b.close()


async def test_sync_failed_mutation_is_not_recorded(sync_api: SyncApi) -> None:
    session_id = str(uuid.uuid4())
    client = await _connect(sync_api, session_id, 0)
    await client.call("Mutation", "notes:refuse", {})
    failed, _ = await client.response("MutationResponse")
    assert failed["success"] is False
    await client.close()

    def lookup(tx: Transaction) -> session_requests.Replayed | None:
        return session_requests.find(tx, session_id, 0)

    found, _ = await sync_api.gateway.store.read(lookup)
    assert found is None


async def test_sync_dedupe_survives_a_restart(sync_app: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = ("session-x", 7)
    args = {"topic": "r", "body": "durable"}
    async with Gateway.open(sync_app, data) as gw:
        first = await gw.runtime.run("mutation", "notes:add", args, request_key=key)
        assert first.ok and first.ts is not None
    async with Gateway.open(sync_app, data) as gw:
        again = await gw.runtime.run("mutation", "notes:add", args, request_key=key)
        assert (again.value, again.ts) == (first.value, first.ts)
        count = await gw.runtime.run("query", "notes:count", {"topic": "r"})
        assert count.value == 1.0


async def test_session_requests_older_than_retention_are_pruned(sync_api: SyncApi) -> None:
    store = sync_api.gateway.store
    day_ms = 86_400_000.0
    now = 100 * day_ms

    def old(tx: Transaction) -> None:
        session_requests.record(tx, "old", 1, "v", now - 15 * day_ms)

    def new(tx: Transaction) -> None:
        session_requests.record(tx, "new", 1, "w", now)

    def both(
        tx: Transaction,
    ) -> tuple[session_requests.Replayed | None, session_requests.Replayed | None]:
        return (
            session_requests.find(tx, "old", 1),
            session_requests.find(tx, "new", 1),
        )

    await store.write(old)
    (found_old, _), _ = await store.read(both)
    assert found_old is not None and found_old.value == "v"
    await store.write(new)
    (found_old, found_new), _ = await store.read(both)
    assert found_old is None
    assert found_new is not None and found_new.value == "w"
