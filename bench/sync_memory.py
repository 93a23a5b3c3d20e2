"""Memory per idle sync connection and per subscription: ``outpost serve`` vs a bare
aiohttp WebSocket server.

Each round starts a fresh ``outpost serve`` on ``bench/fanout.py``'s app (``ticks``,
one small document per key, ``ticks:latest {"key": K}`` returns it) and reads the
server's RssAnon (``/proc/PID/status``) after each step, ``--settle`` seconds after the
step's last answer:

1. no socket open;
2. ``--connections`` sockets, each sending only ``Connect`` (idle connections);
3. ``--subscriptions`` distinct subscriptions spread over those sockets (``Add`` of
   ``ticks:latest`` with a different key each: distinct queries), each answered;
4. as many identical subscriptions (the same key on every socket: one query shared by
   all, once the engine shares executions of identical subscriptions).

Bytes per connection = (2 - 1) / connections; per subscription = (3 - 2) and (4 - 3)
/ subscriptions. The baseline, measured the same way in the same round, is a bare
aiohttp WebSocket server (``bench/fanout.py --role baseline-server``): its bytes per
idle connection. The client is this process (aiohttp), on loopback. Medians of rounds.

    .venv/bin/python bench/sync_memory.py
    .venv/bin/python bench/sync_memory.py --connections 2000 --subscriptions 4000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
from _common import (
    affinity_text,
    fmt,
    make_workdir,
    median,
    outpost_command,
    proc_status_kb,
    raise_fd_limit,
    start_listening,
    stop_process,
    write_app,
)
from fanout import APP, KEY, QUERY, SYNC_PATH, connect_frame, initial_version

_HERE = Path(__file__).resolve().parent

CONNECT_PARALLEL: Final = 64  # handshakes in flight (the listen backlog is 128)
ANSWER_TIMEOUT_S: Final = 120.0
SEED_CHUNK: Final = 500  # keys per seeding mutation
PAD: Final = "x" * 100  # as bench/fanout.py's default payload

SEED = """
from gateway import mutation, v


@mutation(args={"keys": v.array(v.string()), "pad": v.string()})
async def many(ctx, args):
    for key in args["keys"]:
        await ctx.db.insert("ticks", {"key": key, "seq": 0.0, "pad": args["pad"]})
"""


def key(i: int) -> str:
    return f"key-{i:06d}"


class Socket:
    """One raw sync socket: its query-set version and the next free query id."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.query_set = 0
        self.next_query_id = 0
        self.version: dict[str, Any] = initial_version()

    async def subscribe(self, keys: Sequence[str]) -> None:
        """One ModifyQuerySet adding ``ticks:latest`` for each key; returns once the
        Transition that answers it arrived."""
        adds = []
        for k in keys:
            adds.append(
                {
                    "type": "Add",
                    "queryId": self.next_query_id,
                    "udfPath": QUERY,
                    "args": [{"key": k}],
                }
            )
            self.next_query_id += 1
        new = self.query_set + 1
        await self.ws.send_str(
            json.dumps(
                {
                    "type": "ModifyQuerySet",
                    "baseVersion": self.query_set,
                    "newVersion": new,
                    "modifications": adds,
                }
            )
        )
        self.query_set = new
        while self.version["querySet"] < new:
            msg = await self.ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"socket closed while subscribing: {msg}")
            message = json.loads(msg.data)
            if message["type"] == "Transition":
                self.version = message["endVersion"]
            elif message["type"] != "Ping":
                raise RuntimeError(f"unexpected frame {msg.data[:200]}")


async def open_sockets(
    session: aiohttp.ClientSession, url: str, count: int, *, connect: bool
) -> list[Socket]:
    gate = asyncio.Semaphore(CONNECT_PARALLEL)

    async def one() -> Socket:
        async with gate:
            ws = await session.ws_connect(url, compress=0, max_msg_size=0)
        if connect:
            await ws.send_str(connect_frame())
        return Socket(ws)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def spread(sockets: Sequence[Socket], keys: Sequence[str]) -> None:
    """Subscribe ``keys[i]`` on socket ``i % len(sockets)``, one message per socket."""
    per: list[list[str]] = [[] for _ in sockets]
    for i, k in enumerate(keys):
        per[i % len(sockets)].append(k)
    async with asyncio.timeout(ANSWER_TIMEOUT_S):
        await asyncio.gather(*(s.subscribe(ks) for s, ks in zip(sockets, per) if ks))


def settled_rss_kb(pid: int, settle_s: float) -> int:
    """RssAnon after ``settle_s``: the server finishes what the last answer started."""
    time.sleep(settle_s)
    kb = proc_status_kb(pid, "RssAnon")
    if kb is None:
        sys.exit(f"no RssAnon for pid {pid} (is /proc mounted? did the server die?)")
    return kb


async def seed(base_url: str, count: int) -> None:
    """One document per key (and the shared key), so every subscription has a value."""
    keys = [KEY, *(key(i) for i in range(count))]
    async with aiohttp.ClientSession() as session:
        for i in range(0, len(keys), SEED_CHUNK):
            body = {"path": "seed:many", "args": {"keys": keys[i : i + SEED_CHUNK], "pad": PAD}}
            async with session.post(base_url + "/api/mutation", json=body) as r:
                answer = await r.json()
            if answer.get("status") != "success":
                sys.exit(f"seeding failed: {answer}")


@dataclass
class OutpostRound:
    empty_kb: int
    connections_kb: int
    distinct_kb: int
    identical_kb: int


async def measure_outpost(args: argparse.Namespace, base_url: str, pid: int) -> OutpostRound:
    ws_url = "ws" + base_url[len("http") :] + SYNC_PATH
    empty = settled_rss_kb(pid, args.settle)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        sockets = await open_sockets(session, ws_url, args.connections, connect=True)
        connected = settled_rss_kb(pid, args.settle)
        await spread(sockets, [key(i) for i in range(args.subscriptions)])
        distinct = settled_rss_kb(pid, args.settle)
        await spread(sockets, [KEY] * args.subscriptions)
        identical = settled_rss_kb(pid, args.settle)
        await asyncio.gather(*(s.ws.close() for s in sockets))
    return OutpostRound(empty, connected, distinct, identical)


async def measure_baseline(args: argparse.Namespace, base_url: str, pid: int) -> tuple[int, int]:
    ws_url = "ws" + base_url[len("http") :] + "/sub"
    empty = settled_rss_kb(pid, args.settle)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        sockets = await open_sockets(session, ws_url, args.connections, connect=True)
        connected = settled_rss_kb(pid, args.settle)
        await asyncio.gather(*(s.ws.close() for s in sockets))
    return empty, connected


def outpost_round(args: argparse.Namespace, work: Path, r: int) -> OutpostRound:
    app = write_app(work, {**APP, "seed.py": SEED})
    cmd = [
        *outpost_command(),
        *("serve", str(app), "--data-dir", str(work / f"data-{r}"), "--port", "0"),
        *("--log-level", "warning"),
    ]
    proc, url = start_listening(cmd, "Outpost listening on", work / f"outpost-{r}.log")
    try:
        asyncio.run(seed(url, args.subscriptions))
        return asyncio.run(measure_outpost(args, url, proc.pid))
    finally:
        stop_process(proc)


def baseline_round(args: argparse.Namespace, work: Path, r: int) -> tuple[int, int]:
    cmd = [sys.executable, str(_HERE / "fanout.py"), "--role", "baseline-server"]
    proc, url = start_listening([*cmd, "--frame-size", "450"], "listening on", work / "b.log")
    try:
        return asyncio.run(measure_baseline(args, url, proc.pid))
    finally:
        stop_process(proc)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--connections", type=int, default=1000, help="idle sockets (1000)")
    p.add_argument("--subscriptions", type=int, default=1000, help="of each kind (1000)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported (3)")
    p.add_argument("--settle", type=float, default=1.0, help="seconds before each reading (1)")
    p.add_argument("--dir", default=None, help="where the database goes (default: $TMPDIR)")
    args = p.parse_args()
    limit = raise_fd_limit()
    if args.connections < 1 or args.subscriptions < 1:
        p.error("--connections and --subscriptions must be at least 1")
    work = make_workdir(args.dir)
    label = f"{args.connections} connections, {args.subscriptions} subscriptions of each kind"
    print(f"bench/sync_memory.py  {label}  rounds={args.rounds} settle={args.settle:g} s")
    print(f"python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, {affinity_text()}")
    print(f"files in {work}; open files limit {limit}")
    outpost: list[OutpostRound] = []
    baseline: list[tuple[int, int]] = []
    try:
        for r in range(1, args.rounds + 1):
            sides = ("outpost", "baseline") if r % 2 else ("baseline", "outpost")
            for side in sides:
                if side == "outpost":
                    outpost.append(outpost_round(args, work, r))
                else:
                    baseline.append(baseline_round(args, work, r))
            show_round(args, r, outpost[-1], baseline[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(args, label, outpost, baseline)


def per(kb: float, n: int) -> float:
    return kb * 1024 / n


def show_round(args: argparse.Namespace, r: int, o: OutpostRound, b: tuple[int, int]) -> None:
    print(
        f"round {r}: outpost RssAnon {o.empty_kb / 1024:.1f} -> {o.connections_kb / 1024:.1f} -> "
        f"{o.distinct_kb / 1024:.1f} -> {o.identical_kb / 1024:.1f} MB: "
        f"{fmt(per(o.connections_kb - o.empty_kb, args.connections))} B/connection, "
        f"{fmt(per(o.distinct_kb - o.connections_kb, args.subscriptions))} B/distinct sub, "
        f"{fmt(per(o.identical_kb - o.distinct_kb, args.subscriptions))} B/identical sub | "
        f"baseline {b[0] / 1024:.1f} -> {b[1] / 1024:.1f} MB: "
        f"{fmt(per(b[1] - b[0], args.connections))} B/connection",
        flush=True,
    )


def report(
    args: argparse.Namespace,
    label: str,
    outpost: Sequence[OutpostRound],
    baseline: Sequence[tuple[int, int]],
) -> None:
    n, s = args.connections, args.subscriptions
    conn = median(per(o.connections_kb - o.empty_kb, n) for o in outpost) or 0.0
    distinct = median(per(o.distinct_kb - o.connections_kb, s) for o in outpost) or 0.0
    identical = median(per(o.identical_kb - o.distinct_kb, s) for o in outpost) or 0.0
    bare = median(per(b[1] - b[0], n) for b in baseline) or 0.0
    ratio = conn / bare if bare > 0 else float("nan")
    empty = median(o.empty_kb for o in outpost) or 0.0
    total = median(o.identical_kb for o in outpost) or 0.0
    print()
    print(f"medians over {len(outpost)} rounds (RssAnon of the server process, bytes):")
    print(f"  {'':40} {'outpost serve':>14} {'bare aiohttp':>13}")
    print(f"  {'per idle connection (Connect only)':40} {fmt(conn):>14} {fmt(bare):>13}")
    print(f"  {'per subscription, distinct queries':40} {fmt(distinct):>14} {'-':>13}")
    print(f"  {'per subscription, identical query':40} {fmt(identical):>14} {'-':>13}")
    print(
        f"  outpost RssAnon {empty / 1024:.1f} MB idle -> {total / 1024:.1f} MB with {n:,} "
        f"connections and {2 * s:,} subscriptions; per connection {ratio:.1f}x the bare server's"
    )
    print(
        f"SUMMARY sync_memory [{label}]: outpost serve {fmt(conn)} B/idle connection vs bare "
        f"aiohttp {fmt(bare)} B = {ratio:.1f}x; {fmt(distinct)} B/distinct subscription, "
        f"{fmt(identical)} B/identical subscription"
    )


if __name__ == "__main__":
    main()
