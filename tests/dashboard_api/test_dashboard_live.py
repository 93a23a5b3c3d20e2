"""The page's way in: subscriptions over the sync socket as admin (live tables, pages and
dead letters), calls over the HTTP API with the admin key, refusals without it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dashboard_api.dashboard_api_kit import APP, FIRST_PAGE
from sync.sync_kit import SyncApi, SyncClient, add, serving

from gateway.dashboard_api.logs import LOG_KEY
from gateway.values import decode_json


async def admin_client(api: SyncApi) -> SyncClient:
    client = await api.open()
    await client.send(
        {"type": "Authenticate", "baseVersion": 0, "tokenType": "Admin", "value": api.admin_key}
    )
    return client


async def until(client: SyncClient, check: Callable[[], bool]) -> None:
    """Apply Transitions until ``check`` holds (each waits at most the kit's timeout)."""
    for _ in range(50):
        if check():
            return
        await client.transition()
    raise AssertionError("the live result never got there")


def value(client: SyncClient, query_id: int) -> Any:
    result = client.results.get(query_id)
    return None if result is None or result[0] != "ok" else decode_json(result[1])


def count_of(client: SyncClient, table: str) -> float | None:
    tables = value(client, 0) or []
    return next((t["count"] for t in tables if t["name"] == table), None)


async def test_tables_and_pages_follow_writes_live(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    async with serving(make_app(**APP), tmp_path / "data") as api:
        client = await admin_client(api)
        page = {"table": "readings", "paginationOpts": FIRST_PAGE}
        await client.modify(
            add(0, "_system/dashboard/tables:list"),
            add(1, "_system/dashboard/documents:page", page),
            add(2, "_system/dashboard/scheduler:jobs", {"paginationOpts": FIRST_PAGE}),
        )
        await until(client, lambda: count_of(client, "readings") == 0.0)
        headers = {"Authorization": f"Convex {api.admin_key}"}
        for celsius in (1.0, 2.0):
            async with api.session.post(
                "/api/mutation",
                json={"path": "readings:add", "args": {"device": "a", "celsius": celsius}},
            ) as response:
                assert (await response.json())["status"] == "success"
        await until(client, lambda: count_of(client, "readings") == 2.0)
        await until(client, lambda: len((value(client, 1) or {}).get("page", [])) == 2)
        assert [d["celsius"] for d in value(client, 1)["page"]] == [2.0, 1.0]
        async with api.session.post(
            "/api/mutation", json={"path": "readings:later", "args": {}}, headers=headers
        ) as response:
            job_id = (await response.json())["value"]
        await until(client, lambda: len((value(client, 2) or {}).get("page", [])) == 1)
        async with api.session.post(
            "/api/mutation",
            json={"path": "_system/dashboard/scheduler:cancel", "args": {"id": job_id}},
            headers=headers,
        ) as response:
            assert (await response.json())["value"] == "canceled"
        await until(client, lambda: value(client, 2)["page"][0]["state"] == {"kind": "canceled"})
        await client.close()


def messages(client: SyncClient, query_id: int) -> list[str]:
    return [e["message"] for e in (value(client, query_id) or {}).get("entries", [])]


async def test_the_log_is_live_though_it_is_no_table(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    """A function's line reaches a subscribed ``logs:recent`` with no poll: the ring tells
    the sync engine (``touch``), which reruns only the queries that read it."""
    async with serving(make_app(**APP), tmp_path / "data") as api:
        client = await admin_client(api)
        await client.modify(add(0, "_system/dashboard/logs:recent", {"source": "function"}))
        await until(client, lambda: value(client, 0) is not None)
        assert messages(client, 0) == []
        for device in ("a", "b"):
            async with api.session.post(
                "/api/mutation",
                json={"path": "readings:add", "args": {"device": device, "celsius": 1.0}},
            ) as response:
                assert (await response.json())["status"] == "success"
            await until(client, lambda d=device: f"adding {d}" in messages(client, 0))
        await client.close()


async def test_http_calls_with_the_admin_key_and_without(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    async with serving(make_app(**APP), tmp_path / "data") as api:
        headers = {"Authorization": f"Convex {api.admin_key}"}
        body = {
            "path": "_system/dashboard/documents:insert",
            "args": {"table": "readings", "document": {"device": "a", "celsius": "hot"}},
            "format": "json",
        }
        async with api.session.post("/api/mutation", json=body, headers=headers) as response:
            answer = await response.json()
        assert answer["status"] == "error" and "does not match the schema" in answer["errorMessage"]
        body["args"]["document"]["celsius"] = 2.0
        async with api.session.post("/api/mutation", json=body, headers=headers) as response:
            assert (await response.json())["status"] == "success"
        async with api.session.post("/api/mutation", json=body) as response:
            answer = await response.json()
        assert answer["errorMessage"] == (
            "Could not find public function for '_system/dashboard/documents:insert'."
        )
        async with api.session.post(
            "/api/query",
            json={"path": "_system/dashboard/tables:list", "args": {}},
            headers={"Authorization": "Convex not-the-key"},
        ) as response:
            assert response.status in (401, 403)
        # Running an app function from the page: its logLines come back.
        async with api.session.post(
            "/api/action",
            json={"path": "readings:shout", "args": {"text": "hi"}},
            headers=headers,
        ) as response:
            answer = await response.json()
        assert (answer["value"], answer["logLines"]) == ("HI", ["[LOG] shouting"])


async def test_a_line_added_while_its_rerun_runs_is_not_lost(
    make_app: Callable[..., Path], tmp_path: Path, monkeypatch: Any
) -> None:
    """The worst moment: the log changes (and the engine is told) while the round that
    reruns ``logs:recent`` is in flight, after the query read the ring. A commit would
    leave the query dirty past that round's snapshot; a touch has no ts, so the engine
    touches again once the round is over. Three times: the dashboard's start reruns
    every query once more a little later (``TableCounts``), which could rescue one."""
    async with serving(make_app(**APP), tmp_path / "data") as api:
        engine, ring = api.gateway.sync, api.gateway.dashboard.logs
        client = await admin_client(api)
        await client.modify(add(0, "_system/dashboard/logs:recent", {"search": "late line"}))
        await until(client, lambda: value(client, 0) is not None)
        run_queries = engine.runtime.run_queries
        due: list[str] = []

        async def run_then_log(calls: Any) -> Any:
            results = await run_queries(calls)  # the rerun has read the ring already
            if due:
                ring.add("gateway", "INFO", "test", due.pop())
                engine.touch([LOG_KEY])  # as LiveNotice would, inside the round
            return results

        monkeypatch.setattr(engine.runtime, "run_queries", run_then_log)
        # The touches by hand: LiveNotice's quarter second would cover a rerun this short.
        monkeypatch.setattr(ring, "on_added", None)
        for n in range(3):
            due.append(f"late line {n}")
            engine.touch([LOG_KEY])  # a round starts
            await until(client, lambda n=n: f"late line {n}" in messages(client, 0))
        await client.close()
