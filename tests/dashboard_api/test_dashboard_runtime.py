"""The dashboard's functions list, log ring, scheduler, health and readings series."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from dashboard_api.dashboard_api_kit import APP, FIRST_PAGE, admin, failure, refused

from gateway import Gateway, Settings


async def test_functions_list_has_kinds_visibility_and_validators(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    async with Gateway.open(make_app(**APP), tmp_path / "data", Settings()) as gw:
        rows = await admin(gw, "query", "_system/dashboard/functions:list")
        by_path = {row["path"]: row for row in rows}
        add = by_path["readings:add"]
        assert (add["kind"], add["visibility"], add["module"], add["name"]) == (
            "mutation",
            "public",
            "readings",
            "add",
        )
        assert add["args"] == {
            "type": "object",
            "value": {
                "device": {"fieldType": {"type": "string"}, "optional": False},
                "celsius": {"fieldType": {"type": "number"}, "optional": False},
            },
        }
        assert add["returns"] is None
        assert by_path["readings:latest"]["returns"]["type"] == "array"
        later = by_path["readings:later"]
        assert (later["visibility"], later["args"]) == ("internal", None)
        assert by_path["readings:shout"]["kind"] == "action"
        route = by_path["POST /ingest"]
        assert (route["kind"], route["method"], route["route"]) == ("httpAction", "POST", "/ingest")
        assert [row["path"] for row in rows] == sorted(by_path)


async def test_logs_hold_function_lines_and_gateway_records(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    async with Gateway.open(make_app(**APP), tmp_path / "data", Settings()) as gw:
        recent = "_system/dashboard/logs:recent"
        start = (await admin(gw, "query", recent))["lastSeq"]
        result = await gw.call("mutation", "readings:add", {"device": "a", "celsius": 1.0})
        assert result.log_lines == ["[LOG] adding a"]
        await gw.run_action("readings:shout", {"text": "hi"})
        logging.getLogger("gateway.test").warning("the pump %s is dry", "p1")
        logging.getLogger("gateway.test").debug("below the ring's level")
        answer = await admin(gw, "query", recent, {"after": start})
        entries = answer["entries"]
        assert [(e["source"], e["level"], e["name"], e["message"]) for e in entries] == [
            ("function", "INFO", "readings:add", "adding a"),
            ("function", "INFO", "readings:shout", "shouting"),
            ("gateway", "WARN", "gateway.test", "the pump p1 is dry"),
        ]
        assert answer["lastSeq"] == entries[-1]["seq"] and entries[0]["seq"] == start + 1
        only = await admin(gw, "query", recent, {"after": start, "source": "gateway"})
        assert [e["message"] for e in only["entries"]] == ["the pump p1 is dry"]
        warn = await admin(gw, "query", recent, {"after": start, "level": "WARN"})
        assert [e["name"] for e in warn["entries"]] == ["gateway.test"]
        found = await admin(gw, "query", recent, {"after": start, "search": "SHOUT"})
        assert [e["message"] for e in found["entries"]] == ["shouting"]
        newest = await admin(gw, "query", recent, {"after": start, "limit": 1})
        assert [e["message"] for e in newest["entries"]] == ["the pump p1 is dry"]
        bad = await failure(gw, "query", recent, {"level": "LOUD"})
        assert bad.startswith("ArgumentValidationError") and "LOUD" in bad
        assert "Could not find public function" in await refused(gw, "query", recent)


async def test_scheduled_jobs_listed_and_cancelled(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    async with Gateway.open(make_app(**APP), tmp_path / "data", Settings()) as gw:
        jobs = "_system/dashboard/scheduler:jobs"
        job_id = await gw.run_mutation("readings:later")
        page = await admin(gw, "query", jobs, {"paginationOpts": FIRST_PAGE})
        assert [(j["_id"], j["name"], j["state"]) for j in page["page"]] == [
            (job_id, "readings:add", {"kind": "pending"})
        ]
        cancel = "_system/dashboard/scheduler:cancel"
        assert await admin(gw, "mutation", cancel, {"id": job_id}) == "canceled"
        assert await admin(gw, "mutation", cancel, {"id": job_id}) == "canceled"
        pending = await admin(gw, "query", jobs, {"state": "pending", "paginationOpts": FIRST_PAGE})
        assert pending["page"] == []
        done = await admin(gw, "query", jobs, {"state": "canceled", "paginationOpts": FIRST_PAGE})
        assert [j["_id"] for j in done["page"]] == [job_id]
        reading = await gw.run_mutation("readings:add", {"device": "a", "celsius": 1.0})
        wrong = await failure(gw, "mutation", cancel, {"id": reading})
        assert "_scheduled_functions" in wrong and "readings" in wrong
        crons = await admin(gw, "query", "_system/dashboard/scheduler:crons", {"runs": 3})
        assert [(c["name"], c["udfPath"], c["runs"]) for c in crons] == [
            ("tick", "readings:add", [])
        ]
        assert crons[0]["nextTs"] > 0 and crons[0]["schedule"]
        bad = await failure(gw, "query", jobs, {"state": "lost", "paginationOpts": FIRST_PAGE})
        assert bad.startswith("ArgumentValidationError")


async def test_health_status(make_app: Callable[..., Path], tmp_path: Path) -> None:
    async with Gateway.open(make_app(**APP), tmp_path / "data", Settings()) as gw:
        await gw.run_mutation("readings:add", {"device": "a", "celsius": 1.0})
        health = await admin(gw, "query", "_system/dashboard/health:status")
        assert health["gatewayId"] == gw.store.gateway_id
        assert health["store"]["bytes"] > 0
        assert health["written"]["bytes"] is not None and health["written"]["perHour"] >= 0
        assert health["memory"]["rssBytes"] > 1_000_000
        assert health["clock"]["trusted"] in (True, False)
        assert health["disk"]["full"] is False and health["disk"]["freeBytes"] > 0
        assert health["writer"]["commits"] >= 1
        assert health["appError"] is None


async def test_readings_series_for_one_device(
    make_app: Callable[..., Path], tmp_path: Path
) -> None:
    async with Gateway.open(make_app(**APP), tmp_path / "data", Settings()) as gw:
        for device, celsius in [("a", 1.0), ("b", 9.0), ("a", 2.0), ("a", 3.0)]:
            await gw.run_mutation("readings:add", {"device": device, "celsius": celsius})
        series = "_system/dashboard/readings:series"
        args = {"table": "readings", "index": "by_device", "value": "a", "limit": 2}
        answer = await admin(gw, "query", series, args)
        assert answer["fields"] == ["celsius"]
        assert [p["values"] for p in answer["points"]] == [{"celsius": 2.0}, {"celsius": 3.0}]
        times = [p["t"] for p in answer["points"]]
        assert times == sorted(times)
        everyone = await admin(gw, "query", series, {"table": "readings", "index": "by_device"})
        assert len(everyone["points"]) == 4
        no_field = await failure(
            gw, "query", series, {"table": "readings", "index": "by_creation_time", "value": "a"}
        )
        assert "by_creation_time" in no_field
        no_index = await failure(gw, "query", series, {"table": "readings", "index": "nope"})
        assert "nope" in no_index
