"""Fuzz tier of the sync socket (issue 8, section 6): random and malformed frames to a
real server over real WebSockets.

Each batch opens ``CONCURRENCY`` sockets at once, each sending a script of frames from
``sync_fuzz_frames`` and reading until the server closes it or goes quiet. Every frame
the server sends must be a protocol message, every close a protocol refusal (never 1011,
internal error); the server logs no warning, error or traceback; after each batch a
fresh client subscribes, writes and sees its write. At the end, once every socket is
closed: no session, task or descriptor is left behind, and the process's RssAnon grew
less than a stated bound.

CI tier: ``CI_BUDGET_S`` of batches. Soak tier (``pytest -m soak`` or ``OUTPOST_SOAK=1``):
``SOAK_BUDGET_S``. ``OUTPOST_FUZZ_SEED`` replays a run (its seed is printed).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import json
import logging
import os
import random
import time
from collections import Counter

import aiohttp
import pytest
from e2e.conftest import soak_selected
from sync.hostile_kit import bystander, fd_count, status_kb, still_live, until
from sync.sync_fuzz_frames import SERVER_TYPES, FrameMaker
from sync.sync_kit import SyncApi

from gateway.offload import BIG_JSON_BYTES

CI_BUDGET_S = 4.0
SOAK_BUDGET_S = 300.0
CONCURRENCY = 16
QUIET_S = 0.3  # a socket the server neither answers nor closes for this long is done
# Close codes a refused socket may see: normal (AuthError), unsupported data (binary),
# invalid UTF-8, policy violation (FatalError), message too big; 1006 is the client's
# own "abnormal" when the connection drops under a frame it is still sending.
CLOSE_CODES = {1000, 1003, 1007, 1008, 1009, 1006}
RSS_GROWTH_KB = 16 * 1024  # what is still in use after the run, not the allocator's cache


@pytest.fixture
def soak_tier(request: pytest.FixtureRequest) -> None:
    if not soak_selected(request.config):
        pytest.skip("soak tier: select it with `pytest -m soak` or OUTPOST_SOAK=1")


async def test_sync_fuzz_frames_ci(sync_api: SyncApi, caplog: pytest.LogCaptureFixture) -> None:
    await fuzz(sync_api, caplog, CI_BUDGET_S, oversize_every=150)


@pytest.mark.soak
@pytest.mark.timeout(SOAK_BUDGET_S + 300)
async def test_sync_fuzz_frames_soak(
    soak_tier: None, sync_api: SyncApi, caplog: pytest.LogCaptureFixture
) -> None:
    await fuzz(sync_api, caplog, SOAK_BUDGET_S, oversize_every=500)


async def fuzz(
    api: SyncApi, caplog: pytest.LogCaptureFixture, budget_s: float, *, oversize_every: int
) -> None:
    caplog.set_level(logging.WARNING)
    seed = int(os.environ.get("OUTPOST_FUZZ_SEED", "0")) or random.randrange(1, 2**32)
    maker = FrameMaker(random.Random(seed), oversize_every=oversize_every)
    stats: Counter[str] = Counter()
    await fresh_client(api)  # warm up: what a first client allocates is not growth
    await big_frame(api)  # and the worker threads (and their allocator arenas) of big frames
    tasks, fds, rss = len(asyncio.all_tasks()), fd_count(os.getpid()), live_kb()
    end = time.monotonic() + budget_s
    batches = 0
    while time.monotonic() < end:
        scripts = [maker.script() for _ in range(CONCURRENCY)]
        await asyncio.gather(*(run_socket(api, script, stats) for script in scripts))
        batches += 1
        problems = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
        assert not problems, (
            f"seed {seed} batch {batches}: {caplog.text[-3000:]}\n{scripts!r:.3000}"
        )
        await fresh_client(api)
    # The last batch's frames (up to two 16 MiB oversize ones) are this test's own
    # memory, not the server's: let them go before measuring.
    del scripts
    await until(lambda: not api.gateway.sync.sessions, "every session closes")
    await until(lambda: len(asyncio.all_tasks()) <= tasks, "no task left behind")
    await until(lambda: fd_count(os.getpid()) <= fds, "no descriptor left behind")
    grown = live_kb() - rss
    print(f"fuzz seed {seed}: {batches} batches, {stats['sockets']} sockets, RssAnon +{grown} kB")
    print(f"  {json.dumps(dict(sorted(stats.items())))}")
    assert grown < RSS_GROWTH_KB, f"RssAnon grew {grown} kB"


def live_kb() -> int:
    """This process's RssAnon with garbage collected and the C allocator's free memory
    given back (``malloc_trim``): what is in use, not what glibc keeps for reuse (a 16
    MiB frame's buffer would otherwise stay in the figure for good)."""
    gc.collect()
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc_trim(0)
    return status_kb(os.getpid())


async def fresh_client(api: SyncApi) -> None:
    """A new client subscribes, writes and sees its write: the server still serves."""
    client = await bystander(api, "fuzz")
    await still_live(client, "fuzz")
    await client.close()


async def big_frame(api: SyncApi) -> None:
    """A frame big enough to be parsed off the loop (``gateway.offload``), answered."""
    client = await api.open()
    topic = "warm:" + "x" * BIG_JSON_BYTES
    await client.modify(
        {"type": "Add", "queryId": 0, "udfPath": "notes:count", "args": [{"topic": topic}]}
    )
    await client.transition()
    await client.close()


async def run_socket(
    api: SyncApi, script: list[tuple[aiohttp.WSMsgType, bytes]], stats: Counter[str]
) -> None:
    url = f"http://127.0.0.1:{api.port}/api/1.48.0/sync"
    async with api.session.ws_connect(url, autoping=True) as ws:
        stats["sockets"] += 1
        for opcode, data in script:
            if ws.closed:
                break
            stats[f"sent {opcode.name}"] += 1
            with contextlib.suppress(ConnectionError):
                await ws.send_frame(data, opcode)
        await read_until_quiet(ws, stats)


async def read_until_quiet(ws: aiohttp.ClientWebSocketResponse, stats: Counter[str]) -> None:
    """Check what the server sends until it closes the socket or goes quiet."""
    while True:
        try:
            msg = await ws.receive(timeout=QUIET_S)
        except TimeoutError:
            stats["quiet"] += 1
            return
        if msg.type == aiohttp.WSMsgType.TEXT:
            frame = json.loads(msg.data)
            assert isinstance(frame, dict) and frame.get("type") in SERVER_TYPES, frame
            stats[f"got {frame['type']}"] += 1
            continue
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            code = ws.close_code
            assert code in CLOSE_CODES, (code, msg)
            stats[f"closed {code}"] += 1
            return
        assert msg.type == aiohttp.WSMsgType.ERROR, msg  # the client's side of a drop
        stats["dropped"] += 1
        return
