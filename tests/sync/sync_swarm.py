"""Many raw sync clients in one process, for the shutdown, fuzz and churn tests.

    python sync_swarm.py hold URL COUNT [--small-rcvbuf]
    python sync_swarm.py churn URL CLIENTS SECONDS SEED

``hold``: COUNT sockets, each subscribed to ``blobs:latest``; prints ``ready COUNT``
once every socket has its first Transition, then reads them all (so a SIGSTOP of this
process stops every one of them from reading) and prints ``closed CODES`` (a JSON list)
when the server has closed them all. ``--small-rcvbuf`` announces a 4 KB receive buffer
and 1460-byte segments, so a stopped socket's kernel buffers fill after a few large frames.

``churn``: CLIENTS loops for SECONDS, each connecting, subscribing to one to three
``notes:count`` queries, sometimes writing, then dropping in one of three ways: a clean
close, an abrupt reset (SO_LINGER 0, so the kernel sends RST), or a cut in the middle of
a frame (a header announcing more bytes than follow, then a reset or a plain FIN).
Prints ``stats {...}`` (JSON) at the end. Loopback only; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import struct
import sys
import time
import uuid
from collections import Counter
from typing import Any

import aiohttp

WAIT_S = 10.0  # the longest wait for one frame
SMALL_RCVBUF = 4096  # the kernel doubles it
HOLD_S = (0.1, 3.0)  # how long a churning client stays after subscribing
SMALL_MSS = 1460  # loopback's 65 kB segments would let the sender queue megabytes


def connect_frame() -> str:
    return json.dumps(
        {
            "type": "Connect",
            "sessionId": str(uuid.uuid4()),
            "connectionCount": 0,
            "lastCloseReason": "InitialConnect",
            "clientTs": 0,
        }
    )


def modify_frame(adds: list[tuple[int, str, dict[str, Any]]]) -> str:
    mods = [{"type": "Add", "queryId": q, "udfPath": p, "args": [a]} for q, p, a in adds]
    return json.dumps(
        {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": mods}
    )


async def first_transition(ws: aiohttp.ClientWebSocketResponse) -> bool:
    """Read until the first Transition (True) or the socket ends (False)."""
    while True:
        msg = await ws.receive(timeout=WAIT_S)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return False
        if json.loads(msg.data)["type"] == "Transition":
            return True


# --- hold ----------------------------------------------------------------------------


def small_rcvbuf_socket(addr_info: Any) -> socket.socket:
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, SMALL_MSS)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
    return sock


async def hold(url: str, count: int, small_rcvbuf: bool) -> None:
    factory = small_rcvbuf_socket if small_rcvbuf else None
    connector = aiohttp.TCPConnector(limit=0, socket_factory=factory)
    async with aiohttp.ClientSession(connector=connector) as session:
        sockets = [await session.ws_connect(url, heartbeat=None) for _ in range(count)]
        for ws in sockets:
            await ws.send_str(connect_frame())
            await ws.send_str(modify_frame([(0, "blobs:latest", {})]))
        await asyncio.gather(*(first_transition(ws) for ws in sockets))
        print(f"ready {count}", flush=True)
        codes = await asyncio.gather(*(drain(ws) for ws in sockets))
        print(f"closed {json.dumps(codes)}", flush=True)


async def drain(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Read until the socket closes; its close code."""
    async for _ in ws:
        pass
    return ws.close_code


# --- churn ---------------------------------------------------------------------------


async def churn(url: str, clients: int, seconds: float, seed: int) -> None:
    stats: Counter[str] = Counter()
    end = time.monotonic() + seconds
    rng = random.Random(seed)
    seeds = [rng.randrange(2**32) for _ in range(clients)]
    await asyncio.gather(*(churn_one(url, random.Random(s), stats, end) for s in seeds))
    print(f"stats {json.dumps(dict(stats), sort_keys=True)}", flush=True)


async def churn_one(url: str, rng: random.Random, stats: Counter[str], end: float) -> None:
    while time.monotonic() < end:
        try:
            await one_life(url, rng, stats)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            stats[f"error {type(exc).__name__}"] += 1
            await asyncio.sleep(rng.uniform(0.05, 0.2))  # the server may be at its cap


async def one_life(url: str, rng: random.Random, stats: Counter[str]) -> None:
    """One client from connect to drop."""
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(url, heartbeat=None, timeout=aiohttp.ClientWSTimeout(5))
        stats["connected"] += 1
        await ws.send_str(connect_frame())
        pad = "p" * rng.choice((0, 0, 100, 5000))  # some queries carry larger arguments
        adds = [
            (q, "notes:count", {"topic": f"t{rng.randrange(20)}{pad}"})
            for q in range(rng.randint(1, 3))
        ]
        await ws.send_str(modify_frame(adds))
        if rng.random() < 0.8 and await first_transition(ws):
            stats["transitions"] += 1
        if rng.random() < 0.2:
            call = {"type": "Mutation", "requestId": 0, "udfPath": "notes:add"}
            call["args"] = [{"topic": f"t{rng.randrange(20)}", "body": "churn"}]
            await ws.send_str(json.dumps(call))
        await asyncio.sleep(rng.uniform(*HOLD_S))
        how = rng.choice(("clean", "reset", "cut"))
        if how == "clean":
            await ws.close()
        else:
            raw = ws.get_extra_info("socket")
            if raw is not None:
                drop(raw.fileno(), cut=how == "cut", fin=rng.random() < 0.5)
        stats[how] += 1
    # Leaving ``session`` closes its connection: with SO_LINGER 0 that close is a RST.


def drop(fd: int, *, cut: bool, fin: bool) -> None:
    """Abort the connection on ``fd`` (a reset), after half a frame if ``cut``; with
    ``fin`` a cut ends with an orderly FIN instead."""
    sock = socket.socket(fileno=os.dup(fd))  # a second handle on the same connection
    try:
        if cut:
            # A masked text frame announcing 1,000 bytes of payload; 10 follow.
            sock.send(bytes([0x81, 0x80 | 126]) + struct.pack("!H", 1000) + b"mask" + b"x" * 10)
            if fin:
                sock.shutdown(socket.SHUT_WR)
                return
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()


def main() -> None:
    mode, url, *rest = sys.argv[1:]
    if mode == "hold":
        asyncio.run(hold(url, int(rest[0]), "--small-rcvbuf" in rest))
    elif mode == "churn":
        asyncio.run(churn(url, int(rest[0]), float(rest[1]), int(rest[2])))
    else:
        sys.exit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
