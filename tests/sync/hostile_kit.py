"""Helpers of the hostile-client tests (limits, shutdown, fuzz, churn): a served gateway
with chosen settings, a bystander that proves a server still serves, and figures of a
server process read from /proc. Named apart from ``conftest`` so it is imported as a
module of its own, never as a second copy of a conftest."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from sync.conftest import SyncApi, SyncClient, add

from gateway import Gateway, Settings
from gateway.http import HttpServer, load_or_create_admin_key


@asynccontextmanager
async def serving_with(app: Path, data: Path, settings: Settings) -> AsyncIterator[SyncApi]:
    """``sync.conftest.serving`` with ``settings`` for the gateway."""
    async with Gateway.open(app, data, settings) as gw, HttpServer(gw) as http:
        port = await http.start("127.0.0.1", 0)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            yield SyncApi(gw, http, session, load_or_create_admin_key(data), port)


async def bystander(api: SyncApi, topic: str = "calm") -> SyncClient:
    """A client subscribed to ``notes:count`` on ``topic`` (query id 0), first result in."""
    client = await api.open()
    await client.modify(add(0, "notes:count", {"topic": topic}))
    await client.transition()
    return client


async def still_live(client: SyncClient, topic: str = "calm") -> None:
    """``client`` (from ``bystander``) sees its own new write: the server still serves."""
    before = client.results[0][1]
    await client.call("Mutation", "notes:add", {"topic": topic, "body": "still here"})
    await client.response("MutationResponse")
    assert client.results[0] == ("ok", before + 1)


async def until(condition: Callable[[], bool], what: str, deadline_s: float = 10.0) -> None:
    """Wait (on the loop) until ``condition()`` holds; fail naming ``what`` after the deadline."""
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, f"not within {deadline_s} s: {what}"
        await asyncio.sleep(0.01)


def fd_count(pid: int) -> int:
    """Open file descriptors of process ``pid``."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def status_kb(pid: int, field: str = "RssAnon") -> int:
    """A ``kB`` field of ``/proc/PID/status``."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")
