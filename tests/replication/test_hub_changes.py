"""The hub's downlink change log and ``_system/replication:changes``."""

from __future__ import annotations

from pathlib import Path

import pytest
from replication.downlink_kit import changes, changes_args, hub, write_app
from replication.hub_kit import register
from sync.sync_kit import add, serving

from gateway import Settings
from gateway.errors import ConvexError
from gateway.replication.downlink_contract import HUB_CHANGES_PATH


async def test_inserts_patches_replaces_and_deletes_are_logged_in_commit_order(
    tmp_path: Path,
) -> None:
    async with hub(tmp_path) as gw:
        a = await gw.run_mutation("config:put", {"device": "a", "rate": 1.0})
        b = await gw.run_mutation("config:put", {"device": "b", "rate": 2.0})
        first = await changes(gw)
        assert [(c["id"], c["cursor"], c["deleted"]) for c in first["changes"]] == [
            (a, 1.0, False),
            (b, 2.0, False),
        ]
        assert first["changes"][0]["doc"]["rate"] == 1.0
        assert first["changes"][0]["doc"]["_id"] == a
        assert (first["cursor"], first["done"]) == (2.0, True)
        await gw.run_mutation("config:rate", {"id": a, "rate": 5.0})
        await gw.run_mutation("config:swap", {"id": b, "device": "b2", "rate": 6.0})
        await gw.run_mutation("config:drop", {"id": a})
        later = await changes(gw, 2.0)
        # One row per document, at its latest change: b's replace, then a's tombstone.
        assert [(c["id"], c["cursor"], c["deleted"]) for c in later["changes"]] == [
            (b, 4.0, False),
            (a, 5.0, True),
        ]
        assert later["changes"][0]["doc"]["device"] == "b2"
        assert later["changes"][1]["doc"] is None
        assert (await changes(gw, 5.0)) == {"changes": [], "cursor": 5.0, "done": True}


async def test_pages_are_cut_at_the_limit(tmp_path: Path) -> None:
    async with hub(tmp_path) as gw:
        for n in range(3):
            await gw.run_mutation("config:put", {"device": str(n), "rate": float(n)})
        page = await changes(gw, limit=2.0)
        assert (len(page["changes"]), page["cursor"], page["done"]) == (2, 2.0, False)
        rest = await changes(gw, page["cursor"], limit=2.0)
        assert (len(rest["changes"]), rest["cursor"], rest["done"]) == (1, 3.0, True)


async def test_only_down_tables_are_logged_and_a_failed_mutation_leaves_no_row(
    tmp_path: Path,
) -> None:
    async with hub(tmp_path) as gw:
        await gw.store.write(lambda tx: tx.insert("readings", {"celsius": 1.0}, 1.0))
        with pytest.raises(ValueError, match="refused after the write"):
            await gw.run_mutation("config:put_then_fail", {"device": "a", "rate": 1.0})
        assert (await changes(gw))["changes"] == []


async def test_a_wrong_key_is_refused(tmp_path: Path) -> None:
    async with hub(tmp_path) as gw:
        await gw.run_mutation("config:put", {"device": "a", "rate": 1.0})
        with pytest.raises(ConvexError) as refused:
            await gw.run_query(HUB_CHANGES_PATH, {**changes_args(), "key": "wrong"})
        assert refused.value.data == {"code": "ReplicationUnauthorized"}


async def test_a_subscribed_client_gets_each_new_change(tmp_path: Path) -> None:
    register(tmp_path / "hubdata")
    async with serving(write_app(tmp_path), tmp_path / "hubdata", Settings(hub=True)) as api:
        client = await api.open()
        await client.modify(add(0, HUB_CHANGES_PATH, changes_args()))
        await client.transition()
        assert client.results[0][0] == "ok"
        assert client.results[0][1]["changes"] == []
        await api.gateway.run_mutation("config:put", {"device": "a", "rate": 1.0})
        await client.transition()
        assert [c["doc"]["rate"] for c in client.results[0][1]["changes"]] == [1.0]
        await client.close()
