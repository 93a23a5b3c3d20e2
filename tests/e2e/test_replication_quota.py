"""The outbox quota at the process level, against a real hub (issue 11, section 6): fill
it under each policy with the hub down, see the documented behaviour through the HTTP API
and ``outpost status --json``, survive a kill -9 while full, then the hub comes up and
the outbox drains; both stores pass ``integrity_check``.

(``tests/replication/test_edge_quota.py`` holds the policies' rules in process against
a fake upstream; this adds the real processes: the error a client sees, the status a
user sees, the full outbox across a restart, and the recovery into a real hub.)

- ``block``: writes to the ``up`` table are refused with the error naming
  ``outbox_max_bytes`` and ``block``; a local table still takes writes; after the drain
  the hub has every accepted document once, and the up table takes writes again.
- ``drop_oldest``: every write is accepted; the oldest entries are dropped and counted
  (``backlog.dropped`` in ``outpost status --json``); the hub gets the newest documents,
  and its mark covers every seq (dropped entries go as skips).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from edge_process_kit import EdgeProcess, add_gateway, free_port, store_rows
from edge_upstream_kit import eventually, write_app
from serve_process_kit import OUTPOST

from gateway import Gateway

LIMIT = 20_000  # bytes: some 400 small documents
DRAIN_DEADLINE_S = 60.0
DROP_WRITES, DROP_CHUNK = 2_000, 100
_TABLE_SQL = (
    "SELECT id, body FROM documents WHERE tbl = (SELECT number FROM tables WHERE name = '{table}')"
)


async def _setup(tmp_path: Path, policy: str) -> tuple[EdgeProcess, EdgeProcess]:
    app = write_app(tmp_path / "app")
    edge_data, hub_data = tmp_path / "edge", tmp_path / "hub"
    async with Gateway.open(app, edge_data) as gw:
        edge_id = gw.store.gateway_id
    (edge_data / "upstream_key").write_text(add_gateway(app, hub_data, edge_id))
    port = free_port()
    hub = EdgeProcess(app, hub_data, "", tmp_path / "hub.log", port=port, hub=True)
    quota = {"OUTBOX_MAX_BYTES": str(LIMIT), "OUTBOX_OVERFLOW": policy}
    edge = EdgeProcess(
        app, edge_data, f"http://127.0.0.1:{port}", tmp_path / "edge.log", extra=quota
    )
    return edge, hub


async def test_a_full_outbox_under_block_refuses_then_drains_into_the_hub(tmp_path: Path) -> None:
    edge, hub = await _setup(tmp_path, "block")
    try:
        await asyncio.to_thread(edge.start)  # the hub is down
        accepted = await _fill_until_refused(edge)
        await asyncio.to_thread(edge.call, "mutation", "readings:local", {"n": 1})
        status = await asyncio.to_thread(_status, edge)
        assert status["backlog"]["entries"] == accepted and status["backlog"]["dropped"] == 0
        assert status["quota"] == {"maxBytes": LIMIT, "overflow": "block"}
        await asyncio.to_thread(edge.kill9)  # full, and still full after a restart
        await asyncio.to_thread(edge.start)
        assert _error(await asyncio.to_thread(_add, edge, -1.0)), "a full outbox took a write"
        await asyncio.to_thread(hub.start)  # the link returns
        await eventually(lambda: _outbox_empty(edge.data), DRAIN_DEADLINE_S)
        await asyncio.to_thread(edge.call, "mutation", "readings:add", {"n": -2.0})  # room again
        await eventually(lambda: _outbox_empty(edge.data), DRAIN_DEADLINE_S)
        assert await asyncio.to_thread(edge.stop) == 0
        assert await asyncio.to_thread(hub.stop) == 0
    except BaseException:
        await _fail(edge, hub)
        raise
    hub_n = sorted(float(doc["n"]) for doc in _rows(hub.data, "readings"))
    assert hub_n == [-2.0, *map(float, range(accepted))], "not every accepted write, once"
    _integrity(edge, hub)


async def test_a_full_outbox_under_drop_oldest_counts_then_drains_into_the_hub(
    tmp_path: Path,
) -> None:
    edge, hub = await _setup(tmp_path, "drop_oldest")
    try:
        await asyncio.to_thread(edge.start)  # the hub is down
        for start in range(0, DROP_WRITES, DROP_CHUNK):
            args = {"start": start, "count": DROP_CHUNK}
            await asyncio.to_thread(edge.call, "mutation", "readings:add_many", args)
        backlog = (await asyncio.to_thread(_status, edge))["backlog"]
        dropped = int(backlog["dropped"])
        assert dropped > 0 and backlog["entries"] + dropped == DROP_WRITES, backlog
        assert backlog["quotaBytes"] <= LIMIT, backlog
        await asyncio.to_thread(edge.kill9)
        await asyncio.to_thread(edge.start)
        await asyncio.to_thread(hub.start)  # the link returns
        await eventually(lambda: _outbox_empty(edge.data), DRAIN_DEADLINE_S)
        after = (await asyncio.to_thread(_status, edge))["backlog"]
        assert after["dropped"] == dropped and after["entries"] == 0, after  # still shown
        assert await asyncio.to_thread(edge.stop) == 0
        assert await asyncio.to_thread(hub.stop) == 0
    except BaseException:
        await _fail(edge, hub)
        raise
    hub_n = sorted(float(doc["n"]) for doc in _rows(hub.data, "readings"))
    assert hub_n == list(map(float, range(dropped, DROP_WRITES))), "not the newest, once"
    [mark] = _rows(hub.data, "_replication_marks")
    assert mark["applied"] == DROP_WRITES  # the dropped seqs came as skips: no gap
    _integrity(edge, hub)


async def _fill_until_refused(edge: EdgeProcess) -> int:
    """Single inserts (``n`` = 0, 1, ...) until one is refused; how many were accepted."""
    for n in range(100_000):
        answer = await asyncio.to_thread(_add, edge, float(n))
        if message := _error(answer):
            assert "outbox_max_bytes" in message and '"block"' in message, message
            return n
    raise AssertionError("the outbox never filled")


def _add(edge: EdgeProcess, n: float) -> dict[str, Any]:
    """``readings:add`` through the HTTP API; the whole answer (success or error)."""
    body = json.dumps({"path": "readings:add", "args": {"n": n}, "format": "json"}).encode()
    request = urllib.request.Request(
        f"{edge.url}/api/mutation", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # a function error may come with a 4xx status
        answer = json.loads(exc.read())
    return answer


def _error(answer: dict[str, Any]) -> str:
    return "" if answer["status"] == "success" else str(answer["errorMessage"])


def _status(edge: EdgeProcess) -> dict[str, Any]:
    """``outpost status --json`` of the running edge."""
    done = subprocess.run(
        [str(OUTPOST), "status", str(edge.app), "--url", edge.url, "--data-dir", str(edge.data)]
        + ["--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    status: dict[str, Any] = json.loads(done.stdout)
    return status


def _rows(data: Path, table: str) -> list[dict[str, object]]:
    return [json.loads(body) for _, body in store_rows(data, _TABLE_SQL.format(table=table))]


def _outbox_empty(data: Path) -> bool:
    return store_rows(data, "SELECT count(*) FROM change_log") == [(0,)]


def _integrity(*processes: EdgeProcess) -> None:
    for process in processes:
        assert store_rows(process.data, "PRAGMA integrity_check") == [("ok",)]


async def _fail(*processes: EdgeProcess) -> None:
    for process in processes:
        print(f"{process.log.name}:\n{process.tail()}")
        if process.proc is not None:
            await asyncio.to_thread(process.kill9)
