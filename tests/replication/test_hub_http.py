"""A real hub process (``outpost serve`` with ``OUTPOST_HUB=true``) over the Convex HTTP API.

The edge's client path: ``POST /api/mutation`` with the batch as args and no admin key.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hub_kit import EDGE, Edge, change, write_hub_app

from gateway.replication.batch import GAP_CODE, PUSH_PATH, UNAUTHORIZED_CODE

OUTPOST = Path(sys.executable).parent / "outpost"
READY = "Outpost listening on "


async def _outpost(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(OUTPOST), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def hub_url(tmp_path: Path) -> AsyncIterator[tuple[str, Path, dict[str, str]]]:
    app = write_hub_app(tmp_path)
    data = tmp_path / "hubdata"
    env = {**os.environ, "OUTPOST_HUB": "true", "OUTPOST_MQTT_BROKER": "off"}
    env.pop("OUTPOST_PORT", None)
    proc = await asyncio.create_subprocess_exec(
        str(OUTPOST), "serve", str(app), "--port", "0", "--data-dir", str(data),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith(READY), line
        yield line.strip().removeprefix(READY), app, {**env, "OUTPOST_DATA_DIR": str(data)}
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


async def _post(session: aiohttp.ClientSession, url: str, batch: dict[str, Any]) -> Any:
    body = {"path": PUSH_PATH, "args": batch, "format": "json"}
    async with session.post(f"{url}/api/mutation", json=body) as response:
        assert response.status == 200
        return await response.json()


async def _post_gzip(session: aiohttp.ClientSession, url: str, batch: dict[str, Any]) -> Any:
    body = json.dumps({"path": PUSH_PATH, "args": batch, "format": "json"}).encode()
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    async with session.post(f"{url}/api/mutation", data=gzip.compress(body), headers=headers) as r:
        assert r.status == 200
        return await r.json()


async def test_pushes_over_http_with_only_a_gateway_key(
    hub_url: tuple[str, Path, dict[str, str]],
) -> None:
    url, app, env = hub_url
    status, out, err = await _outpost(env, "gateway", "add", EDGE, "--json", str(app))
    assert status == 0, err
    key = json.loads(out)["key"]
    async with aiohttp.ClientSession() as session:
        edge = Edge(900)  # a table the hub lacks: created with the edge's number
        doc_id = edge.new_id()
        batch = edge.batch(1, [change("insert", "sensors", doc_id, {"n": 1.0})], key=key)
        answer = await _post(session, url, batch)
        assert answer == {"status": "success", "value": {"applied": 1}, "logLines": []}
        assert (await _post(session, url, batch))["value"] == {"applied": 1}
        second = edge.batch(2, [change("update", "sensors", doc_id, {"n": 2.0})], key=key)
        assert (await _post_gzip(session, url, second))["value"] == {"applied": 2}
        gap = edge.batch(4, [change("skip", "sensors", doc_id)], key=key)
        refused = await _post(session, url, gap)
        assert refused["errorData"] == {"code": GAP_CODE, "applied": 2}
        wrong = await _post(session, url, {**batch, "key": "nope"})
        assert wrong["errorData"] == {"code": UNAUTHORIZED_CODE}
        status, _, err = await _outpost(env, "gateway", "remove", EDGE, str(app))
        assert status == 0, err
        revoked = await _post(session, url, edge.batch(3, [change("skip", "x", doc_id)], key=key))
        assert revoked["errorData"] == {"code": UNAUTHORIZED_CODE}
        status, out, err = await _outpost(
            env, "run", "_system/replication:gateways", "--url", url, "--app", str(app)
        )
        assert status == 0, err
        [row] = json.loads(out)
        assert (row["gateway"], row["registered"], row["applied"]) == (EDGE, False, 2)
    status, out, err = await _outpost(env, "data", "sensors", "--app", str(app))
    assert status == 0, err
    assert json.loads(out.splitlines()[0]) | {"_creationTime": 0} == {
        "_id": doc_id,
        "_creationTime": 0,
        "n": 2.0,
    }
    status, out, err = await _outpost(env, "data", "_replication_marks", "--app", str(app))
    assert status == 0, err
    assert json.loads(out.splitlines()[0])["applied"] == 2
