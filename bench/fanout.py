"""Fan-out of one live query to many WebSocket subscribers: ``outpost serve`` vs a bare
aiohttp WebSocket server broadcasting frames of the same size to the same clients.

``--subscribers`` sockets (default 1,000), held by ``--processes`` client processes
(default 4, aiohttp), each speak the sync protocol: ``Connect``, then ``ModifyQuerySet``
adding ``ticks:latest {"key": "fanout"}``, the one query they all share (the newest
``ticks`` document). A driver posts one mutation every ``--interval-ms`` (10 ms) for
``--duration`` seconds to ``POST /api/mutation``: ``ticks:bump`` inserts a document with
the next sequence number and returns its ``_creationTime``, which is the commit ts (the
server's wall clock, read when the writer runs the mutation, before its COMMIT). Every
client stamps each frame with ``time.time_ns()`` as it arrives. All processes share one
machine, so CLOCK_REALTIME is one clock for all of them.

- **latency**: commit ts -> receipt, for every committed update and every socket. An
  update a socket never received as its own value (a later Transition superseded it: the
  client fell behind, the server merged) counts at the receipt of that later Transition.
- **merged updates**: committed updates a socket never received as their own value, as
  a count and a share of sockets x updates.

The baseline is a bare aiohttp server (this file, ``--role baseline-server``). The
driver posts ``{"seq": N}`` to it on the same cadence; it stamps ``time.time_ns()``,
sends one frame of exactly the size of Outpost's Transition frames to every socket in a
plain loop, and answers the stamp. The same client processes, connected the same way,
measure it the same way. The sides take turns within each round; medians over rounds.

``--stopped N`` (issue 4: a stopped client raises the others' p99 by < 10%, RSS stays
bounded) runs Outpost alone, twice per round back to back: without and with one more
client process holding N sockets on the same query, sent SIGSTOP once they have their
first value and SIGCONT once the others caught up. It prints the others' p50/p99 both
ways and the ratio, the server's RssAnon before SIGSTOP and before SIGCONT, and what each
stopped socket was offered and got after SIGCONT.

    .venv/bin/python bench/fanout.py
    .venv/bin/python bench/fanout.py --subscribers 100 --processes 2 --duration 3 --rounds 1
    .venv/bin/python bench/fanout.py --dir /dev/shm      # the COMMIT's fsync out of the way
    .venv/bin/python bench/fanout.py --interval-ms 50 --stopped 1
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from _common import (
    affinity_text,
    filesystem_of,
    first_line_with,
    make_workdir,
    median,
    outpost_command,
    proc_cpu_seconds,
    proc_status_kb,
    proc_tcp_queues,
    raise_fd_limit,
    start_listening,
    stop_process,
    verdict,
    write_app,
)
from aiohttp import web

P99_GOAL: Final = 2.0  # outpost p99 / baseline p99: at most
STOPPED_P99_GOAL: Final = 1.10  # --stopped: the others' p99 with / without: below
RSS_GROWTH_GOAL_MB: Final = 4.0  # --stopped: RssAnon growth while stopped: below
PAYLOAD: Final = 100  # --payload without --stopped
# --stopped: the stopped sockets announce an Ethernet MSS and take a small receive buffer,
# so the kernel holds ~100 kB for each of them (measured: ~6 kB received, ~95 kB in the
# server's send queue). With loopback's defaults (64 KB MSS, 128 KB receive buffer) the
# server's send buffer autotunes to tcp_wmem's maximum (4 MB) and ~4.2 MB wait in the
# kernel before the server itself has to hold anything back: at 20 updates/s that takes
# frames over 21 kB, which the 1,000 others on a 2-core box cannot carry (20 kB: p50
# 110 ms, 18% merged, no client stopped). --stopped-loopback-buffers keeps the defaults.
STOPPED_MSS: Final = 1460
STOPPED_RCVBUF: Final = 4096  # the kernel doubles it
# --payload with --stopped: ~5.3 kB frames, 200 of them (1 MB) offered to each stopped
# socket in 10 s at 20/s. Measured: it gets 49 frames (262 kB) after SIGCONT, what the
# kernel and the server's transport held, so the server merges from ~2.5 s on. Bigger
# frames load the 1,000 others more (on a 2-core box, p50 5.3 kB: ~35 ms, 446 B: ~26 ms).
STOPPED_PAYLOAD: Final = 5000
STOPPED_SETTLE_S: Final = 2.0  # --stopped: others subscribed -> drive, in both runs
SYNC_PATH: Final = "/api/1.48.0/sync"
MUTATION: Final = "ticks:bump"
QUERY: Final = "ticks:latest"
KEY: Final = "fanout"
QUERY_ID: Final = 0
CONNECT_PARALLEL: Final = 32  # handshakes in flight per client process (listen backlog)
DRIVER_CONNECTIONS: Final = 64  # keep-alive connections the driver may post on at once
READY_TIMEOUT_S: Final = 180.0
CATCH_UP_TIMEOUT_S: Final = 30.0  # after the last commit, for every socket to receive it
ANSWER_TIMEOUT_S: Final = 120.0  # after the last post, for every answer
PROTOCOL_PING_S: Final = 20.0  # as gateway/sync/websocket.py: both servers alike
NS_PER_MS: Final = 1_000_000

APP: Final = {
    "schema.py": """
from gateway import define_schema, define_table, v

schema = define_schema({
    "ticks": define_table({"key": v.string(), "seq": v.float64(), "pad": v.string()})
    .index("by_key", ["key"]),
})
""",
    "ticks.py": """
from gateway import mutation, query, v


@mutation(args={"key": v.string(), "seq": v.float64(), "pad": v.string()})
async def bump(ctx, args):
    doc = await ctx.db.get(await ctx.db.insert("ticks", args))
    return doc["_creationTime"]


@query(args={"key": v.string()})
async def latest(ctx, args):
    return await (ctx.db.query("ticks")
                  .with_index("by_key", lambda q: q.eq("key", args["key"]))
                  .order("desc").first())
""",
}


# --- sync protocol frames (wire spec 2.3) -----------------------------------------------


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


def subscribe_frame(query_id: int, key: str, base_version: int = 0) -> str:
    return json.dumps(
        {
            "type": "ModifyQuerySet",
            "baseVersion": base_version,
            "newVersion": base_version + 1,
            "modifications": [
                {"type": "Add", "queryId": query_id, "udfPath": QUERY, "args": [{"key": key}]}
            ],
        }
    )


def tick_frame(seq: int, size: int) -> str:
    """The baseline's frame: ``seq`` padded to exactly ``size`` characters (ASCII)."""
    head = f'{{"type":"Tick","seq":{seq},"pad":"'
    return head + "x" * max(0, size - len(head) - 2) + '"}'


def seq_of(message: dict[str, Any]) -> int | None:
    """The sequence number a frame delivers: a Transition's value of the subscribed query
    (Outpost), or a Tick's (baseline); None for anything else (Ping, empty Transition)."""
    kind = message.get("type")
    if kind == "Tick":
        return int(message["seq"])
    if kind != "Transition":
        return None
    for mod in message["modifications"]:
        if mod.get("queryId") == QUERY_ID and mod.get("type") == "QueryUpdated":
            value = mod.get("value")
            return int(value["seq"]) if isinstance(value, dict) else None
    return None


# --- client processes (--role client) ----------------------------------------------------


def initial_version() -> dict[str, Any]:
    return {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}


@dataclass(eq=False)
class Subscriber:
    """One socket's receipts: sequence numbers and arrival times, in arrival order."""

    index: int
    seqs: array.array[int] = field(default_factory=lambda: array.array("q"))
    recvs: array.array[int] = field(default_factory=lambda: array.array("q"))
    version: dict[str, Any] = field(default_factory=initial_version)
    version_errors: int = 0  # a Transition whose startVersion is not the last endVersion
    frame_bytes: int = 0
    first_bytes: int = 0  # of the first value (a stopped socket's, before the stop)
    first: asyncio.Event = field(default_factory=asyncio.Event)  # a value arrived
    last: int | None = None  # the newest commit's sequence number, once the driver is done
    reached: asyncio.Event = field(default_factory=asyncio.Event)  # ``last`` arrived / closed

    def on_frame(self, text: str, recv_ns: int) -> None:
        message = json.loads(text)
        if message.get("type") == "Transition":
            if message["startVersion"] != self.version:
                self.version_errors += 1
            self.version = message["endVersion"]
        seq = seq_of(message)
        if seq is None:
            return
        self.seqs.append(seq)
        self.recvs.append(recv_ns)
        self.frame_bytes += len(text)
        if not self.first.is_set():
            self.first_bytes = len(text)
        self.first.set()
        if seq == self.last:
            self.reached.set()

    def wait_for(self, last: int) -> None:
        """Set ``reached`` once ``last`` arrives: it is the newest commit, so nothing
        arrives after it and it may well be here already."""
        self.last = last
        if self.seqs and self.seqs[-1] == last:
            self.reached.set()


async def listen(
    session: aiohttp.ClientSession, url: str, sub: Subscriber, gate: asyncio.Semaphore
) -> None:
    """Connect, subscribe, then record every frame until the socket closes."""
    async with gate:
        ws = await session.ws_connect(url, compress=0, max_msg_size=0)
    try:
        await ws.send_str(connect_frame())
        await ws.send_str(subscribe_frame(QUERY_ID, KEY))
        while True:
            msg = await ws.receive()
            recv_ns = time.time_ns()  # first thing: parsing is the client's own cost
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            sub.on_frame(msg.data, recv_ns)
    finally:
        sub.reached.set()  # closed: nothing more will come
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 5)


async def all_subscribed(subs: Sequence[Subscriber], tasks: Sequence[asyncio.Task[None]]) -> None:
    """Wait until every socket received its first value; raise a failed socket's error."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not all(s.first.is_set() for s in subs):
        for task in tasks:
            if task.done():
                task.result()  # raises the connect error, if any
                raise RuntimeError("a socket closed before its first value")
        if time.monotonic() > deadline:
            waiting = sum(not s.first.is_set() for s in subs)
            raise RuntimeError(f"{waiting} socket(s) had no value after {READY_TIMEOUT_S} s")
        await asyncio.sleep(0.05)


async def caught_up(subs: Sequence[Subscriber], last: int) -> None:
    """Return once every open socket received ``last``, or after CATCH_UP_TIMEOUT_S (the
    scoring then counts what never came as lost)."""
    for sub in subs:
        sub.wait_for(last)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CATCH_UP_TIMEOUT_S):
            await asyncio.gather(*(s.reached.wait() for s in subs))


def write_receipts(path: Path, subs: Sequence[Subscriber]) -> None:
    """Per socket: ``index, n``, then n sequence numbers, then n arrival times (int64)."""
    with path.open("wb") as out:
        for sub in subs:
            array.array("q", [sub.index, len(sub.seqs)]).tofile(out)
            sub.seqs.tofile(out)
            sub.recvs.tofile(out)


def small_buffered(addr_info: Any) -> socket.socket:
    """aiohttp's ``socket_factory`` for the stopped sockets: set before ``connect``, the
    MSS goes out in the SYN (the server's send buffer autotunes by segment size) and the
    receive buffer bounds the window the socket offers."""
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=kind, proto=proto)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, STOPPED_MSS)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STOPPED_RCVBUF)
    return sock


async def client_process(
    url: str, sockets: int, first_index: int, out: Path, small_buffers: bool = False
) -> dict[str, Any]:
    """The body of one client process: ``ready`` on stdout once subscribed, then wait
    for ``stop LAST`` on stdin, wait for LAST to arrive, write the receipts. ``small_buffers``:
    its sockets are the stopped client's (``small_buffered``)."""
    subs = [Subscriber(first_index + i) for i in range(sockets)]
    gate = asyncio.Semaphore(CONNECT_PARALLEL)
    factory = small_buffered if small_buffers else None
    connector = aiohttp.TCPConnector(limit=0, socket_factory=factory)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(listen(session, url, s, gate)) for s in subs]
        await all_subscribed(subs, tasks)
        print("ready", flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await caught_up(subs, int(line.split()[1]))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    write_receipts(out, subs)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    frames = sum(len(s.seqs) for s in subs)
    return {
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "frames": frames,
        "frame_bytes": sum(s.frame_bytes for s in subs) / max(1, frames),
        "bytes": sum(s.frame_bytes for s in subs),
        "first_bytes": sum(s.first_bytes for s in subs),
        "version_errors": sum(s.version_errors for s in subs),
    }


# --- the baseline server (--role baseline-server) ---------------------------------------


class Broadcaster:
    """A bare aiohttp server: ``/sub`` WebSockets get every tick posted to ``/tick``,
    sent in a plain loop; no queue or task per socket, no database."""

    def __init__(self, frame_size: int) -> None:
        self.frame_size = frame_size
        self.subs: set[web.WebSocketResponse] = set()
        self.latest = 0
        # One broadcast at a time, as Outpost's one writer commits one batch at a time:
        # interleaved loops would reorder frames on a socket.
        self.lock = asyncio.Lock()

    async def subscriber(self, request: web.Request) -> web.WebSocketResponse:
        """Ignores what clients send; joins the broadcast at their second message (the
        ModifyQuerySet) with the latest value, as a subscription's first Transition."""
        # Outpost's socket settings (gateway/sync/websocket.py), so both pay for the same.
        ws = web.WebSocketResponse(compress=False, heartbeat=PROTOCOL_PING_S)
        await ws.prepare(request)
        received = 0
        try:
            async for _ in ws:
                received += 1
                if received == 2:
                    self.subs.add(ws)
                    await ws.send_str(tick_frame(self.latest, self.frame_size))
        finally:
            self.subs.discard(ws)
        return ws

    async def tick(self, request: web.Request) -> web.Response:
        """``{"seq": N}``: stamp (the "commit"), send the frame to every socket, answer the
        stamp as Outpost answers a mutation (``value``: ms since the epoch)."""
        seq = int((await request.json())["seq"])
        async with self.lock:
            stamp = time.time_ns()
            self.latest = seq
            frame = tick_frame(seq, self.frame_size)
            for sub in list(self.subs):
                try:
                    await sub.send_str(frame)
                except (ConnectionError, RuntimeError):
                    self.subs.discard(sub)
        return web.json_response({"status": "success", "value": stamp / NS_PER_MS})


async def baseline_server(frame_size: int) -> None:
    broadcaster = Broadcaster(frame_size)
    app = web.Application()
    app.router.add_get("/sub", broadcaster.subscriber)
    app.router.add_post("/tick", broadcaster.tick)
    runner = web.AppRunner(app, handle_signals=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"baseline listening on http://127.0.0.1:{port}", flush=True)
    try:
        await asyncio.Event().wait()  # until SIGTERM (handle_signals) cancels us
    finally:
        await runner.cleanup()


# --- the driver (in the main process) ----------------------------------------------------


@dataclass
class Target:
    """One side: where clients subscribe, where the driver posts, what it posts."""

    name: str
    sub_url: str
    post_url: str
    pid: int
    body: Callable[[int], bytes]


def outpost_body(pad: str) -> Callable[[int], bytes]:
    def body(seq: int) -> bytes:
        args = {"key": KEY, "seq": float(seq), "pad": pad}
        return json.dumps(
            {"path": MUTATION, "args": args, "format": "convex_encoded_json"}
        ).encode()

    return body


def baseline_body(seq: int) -> bytes:
    return json.dumps({"seq": seq}).encode()


@dataclass
class Drive:
    """Per sequence number: commit ts (ns, from the answer) and when the answer came."""

    committed: dict[int, int]
    answered: dict[int, int]
    seconds: float


async def post_one(session: aiohttp.ClientSession, target: Target, seq: int, drive: Drive) -> None:
    headers = {"Content-Type": "application/json"}
    async with session.post(target.post_url, data=target.body(seq), headers=headers) as r:
        answer = await r.json()
    if r.status != 200 or answer.get("status") != "success":
        raise RuntimeError(f"{target.name}: seq {seq} answered HTTP {r.status}: {answer}")
    drive.answered[seq] = time.time_ns()
    drive.committed[seq] = round(answer["value"] * NS_PER_MS)


async def drive(target: Target, seqs: range, interval_s: float) -> Drive:
    """One post per tick on an absolute schedule (a late tick goes at once: the cadence
    does not drift, and a slow server does not slow it down); then every answer."""
    loop = asyncio.get_running_loop()
    got = Drive({}, {}, 0.0)
    connector = aiohttp.TCPConnector(limit=DRIVER_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        posts: list[asyncio.Task[None]] = []
        start = loop.time()
        for i, seq in enumerate(seqs):
            delay = start + i * interval_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            posts.append(asyncio.create_task(post_one(session, target, seq, got)))
        got.seconds = loop.time() - start
        await asyncio.wait_for(asyncio.gather(*posts), ANSWER_TIMEOUT_S)
    return got


# --- one side of one round -----------------------------------------------------------------

Client = tuple[subprocess.Popen[str], Path]
Clients = list[Client]


def start_client(
    target: Target, work: Path, tag: str, sockets: int, first: int, small_buffers: bool = False
) -> Client:
    """One client process holding ``sockets`` sockets, numbered from ``first``."""
    out = work / f"{target.name}-{tag}.bin"
    cmd = [
        sys.executable,
        __file__,
        *("--role", "client", "--url", target.sub_url, "--sockets", str(sockets)),
        *("--first-index", str(first), "--out", str(out)),
        *(["--small-buffers"] if small_buffers else []),
    ]
    log = (work / f"{target.name}-{tag}.log").open("w")
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
    )
    return proc, out


def start_clients(args: argparse.Namespace, target: Target, work: Path) -> Clients:
    shares = [
        args.subscribers // args.processes + (k < args.subscribers % args.processes)
        for k in range(args.processes)
    ]
    clients = []
    first = 0
    for k, share in enumerate(shares):
        clients.append(start_client(target, work, f"client-{k}", share, first))
        first += share
    return clients


def wait_ready(clients: Clients, name: str) -> None:
    for proc, out in clients:
        assert proc.stdout is not None
        if first_line_with(proc.stdout, "ready", READY_TIMEOUT_S + 10) is None:
            sys.exit(f"{name}: a client process did not subscribe (log: {out.with_suffix('.log')})")


def stop_clients(clients: Clients, last: int, name: str) -> list[dict[str, Any]]:
    """Tell every client the newest commit's sequence number; collect their reports."""
    for proc, _ in clients:
        assert proc.stdin is not None
        proc.stdin.write(f"stop {last}\n")
        proc.stdin.flush()
    reports = []
    for proc, out in clients:
        assert proc.stdout is not None
        text = proc.stdout.read()
        if proc.wait(CATCH_UP_TIMEOUT_S + 30) != 0 or not text.strip():
            sys.exit(f"{name}: a client process failed (log: {out.with_suffix('.log')})")
        reports.append(json.loads(text.strip().splitlines()[-1]))
    return reports


def read_receipts(path: Path) -> list[tuple[array.array[int], array.array[int]]]:
    data = array.array("q")
    data.frombytes(path.read_bytes())
    sockets = []
    at = 0
    while at < len(data):
        n = data[at + 1]
        at += 2
        sockets.append((data[at : at + n], data[at + n : at + 2 * n]))
        at += 2 * n
    return sockets


@dataclass
class Score:
    latencies: list[float]  # ms, sorted: every (socket, committed update) received
    own: list[float]  # ms, sorted: only updates received as their own value
    merged: int
    lost: int  # never received, not even through a newer one
    out_of_order: int  # a frame older (by commit ts) than one received before it


def score(
    sockets: list[tuple[array.array[int], array.array[int]]],
    committed: dict[int, int],
    window: Sequence[int],
) -> Score:
    """For each socket and each update in ``window``: commit ts -> receipt of the first
    frame carrying it or a newer commit. Commits are ordered by their ts, not their
    sequence number: concurrent posts may commit in any order."""
    wanted = sorted((committed[s], s) for s in window)
    result = Score([], [], 0, 0, 0)
    for seqs, recvs in sockets:
        # Receipts of this side's commits, by commit ts (the initial value is older).
        got = [(committed[s], s, r) for s, r in zip(seqs, recvs) if s in committed]
        result.out_of_order += sum(a[0] > b[0] for a, b in zip(got, got[1:]))
        j = 0
        for ts, seq in wanted:
            while j < len(got) and got[j][0] < ts:
                j += 1
            if j == len(got):
                result.lost += 1
                continue
            ms = (got[j][2] - ts) / NS_PER_MS
            result.latencies.append(ms)
            if got[j][1] == seq:
                result.own.append(ms)
            else:
                result.merged += 1
    result.latencies.sort()
    result.own.sort()
    return result


def pct(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Stall:
    """The stopped client process of one run (``--stopped``): what its sockets were
    offered while it was stopped, what the kernel held for them, what came after SIGCONT."""

    sockets: int
    stopped_s: float  # SIGSTOP -> SIGCONT
    offered: int  # updates committed while stopped: the frames a socket gets unmerged
    rx_queue: list[int]  # bytes in each socket's kernel receive queue just before SIGCONT
    frames: int  # frames carrying a value received after SIGCONT, all sockets
    bytes_after: int  # their bytes
    caught_up: int  # sockets whose last frame carried the newest commit
    version_errors: int

    @property
    def merged_pct(self) -> float:
        """Updates the stopped sockets never got as their own frame: the server merged
        them, which it only does once a socket's buffers are full."""
        return 100 * (1 - self.frames / max(1, self.offered * self.sockets))


@dataclass
class SideResult:
    """One side in one round: the score and the figures around it."""

    score: Score
    expected: int  # sockets x scored updates
    all_pairs: int  # sockets x every update of the run (warm-up too: the CPU covers it)
    server_cpu_s: float
    client_cpu_s: float
    commit_rate: float
    answer_ms: float  # median commit ts -> the driver has the answer
    frames: int  # frames carrying a value that all clients received (first values too)
    frame_bytes: float
    version_errors: int
    # The server's RssAnon (kB) once every socket is subscribed (with --stopped: just
    # before SIGSTOP) and once the clients caught up (just before SIGCONT).
    rss_kb: tuple[int, int] = (0, 0)
    stall: Stall | None = None  # with --stopped, in the run that has the stopped client

    @property
    def rss_growth_mb(self) -> float:
        return (self.rss_kb[1] - self.rss_kb[0]) / 1024

    def p(self, q: float) -> float:
        return pct(self.score.latencies, q)

    @property
    def cpu_us_per_pair(self) -> float:
        return self.server_cpu_s * 1e6 / max(1, self.all_pairs)

    @property
    def cpu_us_per_frame(self) -> float:
        return self.server_cpu_s * 1e6 / max(1, self.frames)

    @property
    def merged_pct(self) -> float:
        return 100 * self.score.merged / max(1, self.expected)


def resume_stalled(client: Client, newest: int, stopped_at: float, offered: int) -> Stall:
    """The end of the stopped period: read the kernel's receive queues of the stopped
    sockets, SIGCONT, then let them catch up with ``newest`` (after the scored part, so
    their draining does not load the others) and count what came after the stop."""
    proc, out = client
    rx_queue = [rx for _, rx in proc_tcp_queues(proc.pid)]
    stopped_s = time.monotonic() - stopped_at
    os.kill(proc.pid, signal.SIGCONT)
    (report,) = stop_clients([client], newest, "stopped client")
    sockets = read_receipts(out)
    return Stall(
        sockets=len(sockets),
        stopped_s=stopped_s,
        offered=offered,
        rx_queue=rx_queue,
        frames=sum(len(seqs) - 1 for seqs, _ in sockets),  # all but the first value
        bytes_after=report["bytes"] - report["first_bytes"],
        caught_up=sum(bool(seqs) and seqs[-1] == newest for seqs, _ in sockets),
        version_errors=report["version_errors"],
    )


def run_side(
    args: argparse.Namespace, target: Target, work: Path, seqs: range, stopped: int = 0
) -> SideResult:
    """One side's run; with ``stopped`` > 0 one more client process holds that many
    sockets on the same query and is stopped (SIGSTOP) for the drive and the catch-up."""
    clients = start_clients(args, target, work)
    held: Clients = []
    stall = None
    try:
        wait_ready(clients, target.name)
        ready_at = time.monotonic()
        if stopped:
            # Started once the others are subscribed, so its sockets stay stopped for the
            # drive alone (~12 s): the server pings a socket 20 s after its last message
            # and drops it 10 s later without a pong, which would end the stall early.
            small = not args.stopped_loopback_buffers
            held.append(start_client(target, work, "stopped", stopped, args.subscribers, small))
            wait_ready(held, target.name)
        if args.stopped:
            # Both runs of a --stopped round start the drive as long after the others
            # subscribed, whether or not the stopped client was started meanwhile.
            time.sleep(max(0.0, ready_at + STOPPED_SETTLE_S - time.monotonic()))
        rss_before = proc_status_kb(target.pid) or 0
        stopped_at = time.monotonic()
        for proc, _ in held:
            os.kill(proc.pid, signal.SIGSTOP)
        cpu0 = proc_cpu_seconds(target.pid)
        got = asyncio.run(drive(target, seqs, args.interval_ms / 1000))
        newest = max(got.committed, key=got.committed.__getitem__)
        reports = stop_clients(clients, newest, target.name)
        server_cpu = proc_cpu_seconds(target.pid) - cpu0
        rss_after = proc_status_kb(target.pid) or 0
        if held:
            stall = resume_stalled(held[0], newest, stopped_at, len(got.committed))
    finally:
        for proc, _ in clients + held:
            if proc.poll() is None:
                proc.kill()  # SIGKILL ends a stopped process too
                proc.wait()
    sockets = [s for _, out in clients for s in read_receipts(out)]
    warmup = min(len(seqs) - 1, int(args.warmup * 1000 / args.interval_ms))
    window = range(seqs.start + warmup, seqs.stop)
    ts = sorted(got.committed[s] for s in window)
    span_s = (ts[-1] - ts[0]) / 1e9
    frames = sum(r["frames"] for r in reports)
    return SideResult(
        score=score(sockets, got.committed, window),
        expected=len(window) * len(sockets),
        all_pairs=len(seqs) * len(sockets),
        server_cpu_s=server_cpu,
        client_cpu_s=sum(r["cpu_s"] for r in reports),
        commit_rate=(len(ts) - 1) / span_s if span_s > 0 else 0.0,
        answer_ms=median((got.answered[s] - got.committed[s]) / NS_PER_MS for s in window) or 0.0,
        frames=frames,
        frame_bytes=sum(r["frame_bytes"] * r["frames"] for r in reports) / max(1, frames),
        version_errors=sum(r["version_errors"] for r in reports),
        rss_kb=(rss_before, rss_after),
        stall=stall,
    )


# --- setup, rounds, report ---------------------------------------------------------------


async def probe_frame_size(target: Target, pad: str) -> int:
    """One subscriber, then one mutation (seq 0): the length of the Transition that
    delivers it. Checks the value on the way."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(target.sub_url, compress=0, max_msg_size=0) as sub,
    ):
        await sub.send_str(connect_frame())
        await sub.send_str(subscribe_frame(QUERY_ID, KEY))
        # The first value before the mutation, as the client processes do: the probe
        # measures the frame of an update, not of a first run.
        first = await sub.receive(timeout=30)
        if first.type != aiohttp.WSMsgType.TEXT or json.loads(first.data)["type"] != "Transition":
            sys.exit(f"outpost: the subscription's first frame was {first.data!r}")
        await post_one(session, target, 0, Drive({}, {}, 0.0))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = await sub.receive(timeout=30)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(msg.data)
            if seq_of(message) == 0:
                value = message["modifications"][0]["value"]
                if value.get("pad") != pad or value.get("key") != KEY:
                    sys.exit(f"outpost: unexpected value {value!r}")
                return len(msg.data)
    sys.exit("outpost: no Transition carried the probe mutation")


def start_outpost(
    args: argparse.Namespace, work: Path, servers: list[subprocess.Popen[str]]
) -> tuple[Target, int]:
    """``outpost serve`` on the app; returns it and the length of its Transition frame."""
    app_dir = write_app(work, APP)
    outpost_cmd = [
        *outpost_command(),
        *("serve", str(app_dir), "--data-dir", str(work / "data"), "--port", "0"),
        *("--log-level", "warning"),
    ]
    print("outpost:  " + " ".join(outpost_cmd))
    proc, url = start_listening(outpost_cmd, "Outpost listening on", work / "outpost.log")
    servers.append(proc)
    pad = "x" * args.payload
    ws_url = "ws" + url[len("http") :]
    outpost = Target(
        "outpost", ws_url + SYNC_PATH, url + "/api/mutation", proc.pid, outpost_body(pad)
    )
    return outpost, asyncio.run(probe_frame_size(outpost, pad))


def start_baseline(work: Path, servers: list[subprocess.Popen[str]], size: int) -> Target:
    """The bare broadcaster, sending frames of ``size`` bytes."""
    baseline_cmd = [
        sys.executable,
        __file__,
        "--role",
        "baseline-server",
        "--frame-size",
        str(size),
    ]
    print("baseline: " + " ".join(baseline_cmd))
    proc, url = start_listening(baseline_cmd, "listening on", work / "baseline.log")
    servers.append(proc)
    ws_url = "ws" + url[len("http") :]
    return Target("baseline", ws_url + "/sub", url + "/tick", proc.pid, baseline_body)


def show_round(r: int, results: dict[str, SideResult]) -> None:
    parts = [
        f"{name} p50 {res.p(0.5):6.1f} ms p99 {res.p(0.99):7.1f} ms merged "
        f"{res.merged_pct:5.1f}% ({res.commit_rate:.0f}/s, server cpu {res.server_cpu_s:.1f} s)"
        for name, res in results.items()
    ]
    ratio = results["outpost"].p(0.99) / results["baseline"].p(0.99)
    print(f"round {r}: " + " | ".join(parts) + f" | p99 ratio {ratio:.2f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--subscribers", type=int, default=1000, help="sockets in all (1000)")
    p.add_argument("--processes", type=int, default=4, help="client processes (4)")
    p.add_argument("--interval-ms", type=float, default=10.0, help="one mutation every (10)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of mutations (10)")
    p.add_argument("--warmup", type=float, default=1.0, help="first seconds not scored (1)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported (3)")
    p.add_argument(
        "--payload",
        type=int,
        default=None,
        help=f"pad string in each doc ({PAYLOAD}; with --stopped {STOPPED_PAYLOAD})",
    )
    p.add_argument(
        "--stopped",
        type=int,
        default=0,
        help="outpost only: run each round without and with one more client process\n"
        "holding this many sockets, stopped (SIGSTOP) while the mutations run (0)",
    )
    p.add_argument(
        "--stopped-loopback-buffers",
        action="store_true",
        help="the stopped sockets keep loopback's kernel buffers (~4.2 MB each, filled\n"
        "only by frames over ~21 kB at 20/s) instead of ~100 kB (MSS 1460, 4 KB SO_RCVBUF)",
    )
    p.add_argument("--dir", default=None, help="where the database goes (default: $TMPDIR)")
    p.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    # The same file runs as the client processes and as the baseline server.
    p.add_argument("--role", default="main", choices=("main", "client", "baseline-server"))
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--sockets", type=int, help=argparse.SUPPRESS)
    p.add_argument("--first-index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--frame-size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--small-buffers", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.payload is None:
        args.payload = STOPPED_PAYLOAD if args.stopped else PAYLOAD
    raise_fd_limit()  # inherited by the servers and the client processes
    if args.role == "client":
        out = Path(args.out)
        report = asyncio.run(
            client_process(args.url, args.sockets, args.first_index, out, args.small_buffers)
        )
        print(json.dumps(report), flush=True)
    elif args.role == "baseline-server":
        with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
            asyncio.run(baseline_server(args.frame_size))
    elif args.subscribers < args.processes or args.duration * 1000 < 4 * args.interval_ms:
        p.error("need at least one socket per process and four mutations")
    elif args.stopped < 0:
        p.error("--stopped counts sockets: 0 or more")
    else:
        run_main(args)


def run_main(args: argparse.Namespace) -> None:
    work = make_workdir(args.dir)
    count = int(args.duration * 1000 / args.interval_ms)
    label = (
        f"{args.subscribers} subscribers in {args.processes} processes, "
        f"1 mutation/{args.interval_ms:g} ms"
    )
    stopped = ""
    if args.stopped:
        label += f", {args.stopped} stopped socket(s), {args.payload}-character pad"
        stopped = f" stopped={args.stopped} payload={args.payload}"
    print(
        f"bench/fanout.py  subscribers={args.subscribers} processes={args.processes} "
        f"interval={args.interval_ms:g} ms duration={args.duration:g} s ({count} mutations, "
        f"first {args.warmup:g} s not scored) rounds={args.rounds}{stopped}"
    )
    print(f"python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, {affinity_text()}")
    print(f"files in {work} on {filesystem_of(work)}; open files limit {raise_fd_limit()}")
    servers: list[subprocess.Popen[str]] = []
    try:
        outpost, size = start_outpost(args, work, servers)
        if args.stopped:
            print(f"frames: outpost's Transition is {size} bytes")
            rounds = stopped_rounds(args, work, outpost, count)
        else:
            baseline = start_baseline(work, servers, size)
            print(f"frames: outpost's Transition is {size} bytes; the baseline sends {size} bytes")
            rounds = baseline_rounds(args, work, (outpost, baseline), count)
    finally:
        for proc in servers:
            stop_process(proc)
        shutil.rmtree(work, ignore_errors=True)
    if args.stopped:
        report_stopped(args, label, rounds, size)
    else:
        report(args, label, rounds)


Rounds = list[dict[str, SideResult]]
ALONE: Final = "alone"  # --stopped: the run without the stopped client
STOPPED: Final = "stopped"  # --stopped: the run with it


def baseline_rounds(
    args: argparse.Namespace, work: Path, targets: tuple[Target, Target], count: int
) -> Rounds:
    """Outpost and the baseline back to back in each round, the first alternating."""
    outpost, baseline = targets
    rounds: Rounds = []
    seq = 1  # the probe's mutation was 0
    for r in range(1, args.rounds + 1):
        order = [outpost, baseline] if r % 2 else [baseline, outpost]
        results: dict[str, SideResult] = {}
        for target in order:
            results[target.name] = run_side(args, target, work, range(seq, seq + count))
            seq += count
        rounds.append({"outpost": results["outpost"], "baseline": results["baseline"]})
        show_round(r, rounds[-1])
    return rounds


def stopped_rounds(args: argparse.Namespace, work: Path, outpost: Target, count: int) -> Rounds:
    """Outpost without and with the stopped client back to back in each round, the first
    alternating, so load from elsewhere and the growing table affect both alike."""
    rounds: Rounds = []
    seq = 1  # the probe's mutation was 0
    for r in range(1, args.rounds + 1):
        order = [0, args.stopped] if r % 2 else [args.stopped, 0]
        results: dict[str, SideResult] = {}
        for stopped in order:
            seqs = range(seq, seq + count)
            results[STOPPED if stopped else ALONE] = run_side(args, outpost, work, seqs, stopped)
            seq += count
        rounds.append({ALONE: results[ALONE], STOPPED: results[STOPPED]})
        show_stopped_round(r, rounds[-1])
    return rounds


def the_stall(result: SideResult) -> Stall:
    assert result.stall is not None, "the run with the stopped client has its figures"
    return result.stall


def show_stopped_round(r: int, results: dict[str, SideResult]) -> None:
    alone, with_stopped = results[ALONE], results[STOPPED]
    stall = the_stall(with_stopped)
    parts = [
        f"{name} p50 {res.p(0.5):6.1f} ms p99 {res.p(0.99):7.1f} ms "
        f"({res.commit_rate:.0f}/s, RssAnon {res.rss_growth_mb:+.2f} MB)"
        for name, res in (("without", alone), (f"with {stall.sockets} stopped", with_stopped))
    ]
    ratio = with_stopped.p(0.99) / alone.p(0.99)
    print(f"round {r}: others " + " | ".join(parts) + f" | p99 ratio {ratio:.2f}", flush=True)
    rx = median(stall.rx_queue) or 0
    print(
        f"  stopped {stall.stopped_s:.1f} s: RssAnon {with_stopped.rss_kb[0] / 1024:.1f} -> "
        f"{with_stopped.rss_kb[1] / 1024:.1f} MB; each stopped socket was offered "
        f"{stall.offered} updates, got {stall.frames / stall.sockets:.0f} frames "
        f"({stall.bytes_after / stall.sockets / 1e3:,.0f} kB) after SIGCONT, merged "
        f"{stall.merged_pct:.0f}%; kernel receive queue {rx / 1e3:,.0f} kB",
        flush=True,
    )


def med(rounds: Rounds, side: str, value: Callable[[SideResult], float]) -> float:
    return median(value(r[side]) for r in rounds) or 0.0


BASELINE_ROWS: Final = (("outpost", "outpost serve"), ("baseline", "bare aiohttp broadcast"))


def print_table(rounds: Rounds, rows: Sequence[tuple[str, str]] = BASELINE_ROWS) -> None:
    """One row per side (``rows``: its key in a round, its name), medians over rounds."""
    print(
        f"  {'':24} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'p99 own':>8} {'merged':>7} "
        f"{'lost':>5} {'commits/s':>9} {'answer':>6} {'srv cpu':>7} {'cli cpu':>7} {'frame':>5}"
    )
    columns: list[tuple[str, str, Callable[[SideResult], float]]] = [
        ("7.1f", "", lambda s: s.p(0.5)),
        ("7.1f", "", lambda s: s.p(0.99)),
        ("7.1f", "", lambda s: s.p(1.0)),
        ("8.1f", "", lambda s: pct(s.score.own, 0.99)),
        ("6.1f", "%", lambda s: s.merged_pct),
        ("5.0f", "", lambda s: s.score.lost),
        ("9.0f", "", lambda s: s.commit_rate),
        ("6.1f", "", lambda s: s.answer_ms),
        ("6.1f", "s", lambda s: s.server_cpu_s),
        ("6.1f", "s", lambda s: s.client_cpu_s),
        ("5.0f", "", lambda s: s.frame_bytes),
    ]
    for side, name in rows:
        cells = [format(med(rounds, side, value), spec) + unit for spec, unit, value in columns]
        print(f"  {name:24} " + " ".join(cells))
    print(
        "  p99 own: updates received as their own value only; answer: ms from the commit ts "
        "until the driver has the answer (outpost: COMMIT + fsync + HTTP); cpu: server process "
        "and all client processes, per side and round; frame: bytes per frame received"
    )


def below_cadence(args: argparse.Namespace, rounds: Rounds) -> dict[str, float]:
    """The sides whose median commit rate stayed under 95% of the cadence."""
    cadence = 1000 / args.interval_ms
    rates = {side: med(rounds, side, lambda s: s.commit_rate) for side in ("outpost", "baseline")}
    return {side: rate for side, rate in rates.items() if rate < 0.95 * cadence}


def report(args: argparse.Namespace, label: str, rounds: Rounds) -> None:
    o, b = "outpost", "baseline"
    ratio = median(r[o].p(0.99) / r[b].p(0.99) for r in rounds) or 0.0
    slow = below_cadence(args, rounds)
    # The bare broadcaster stamps when its loop starts; when one loop over every socket
    # takes longer than the interval, ticks queue before the stamp and the machine sets
    # the pace: its latencies are no floor then, and the ratio has no meaning.
    comparable = b not in slow
    ok = comparable and ratio <= P99_GOAL
    goal = f"goal <= {P99_GOAL:g}: " + (verdict(ok) if comparable else "n/a, baseline saturated")
    errors = sum(r[s].version_errors + r[s].score.out_of_order for r in rounds for s in (o, b))
    print()
    print(
        f"medians over {len(rounds)} rounds; latency = commit ts -> receipt, for every socket "
        "and committed update (a merged one at the frame that superseded it):"
    )
    print_table(rounds)
    print(
        f"  p99 ratio outpost/baseline {ratio:.2f} ({goal}; median of per-round ratios); "
        f"outpost merged {med(rounds, o, lambda s: s.score.merged):,.0f} of "
        f"{med(rounds, o, lambda s: s.expected):,.0f} (socket, update) pairs; protocol errors "
        f"(start version, order) {errors}"
    )
    print(
        "  server CPU per frame sent: outpost "
        f"{med(rounds, o, lambda s: s.cpu_us_per_frame):.1f} us, baseline "
        f"{med(rounds, b, lambda s: s.cpu_us_per_frame):.1f} us; per (socket, update): outpost "
        f"{med(rounds, o, lambda s: s.cpu_us_per_pair):.1f} us, baseline "
        f"{med(rounds, b, lambda s: s.cpu_us_per_pair):.1f} us"
    )
    saturated = ""
    if slow:
        rates = ", ".join(f"{side} {rate:.0f}/s" for side, rate in slow.items())
        cadence = f"{1000 / args.interval_ms:g}/s"
        saturated = f"; below the cadence of {cadence}: {rates}"
        print(
            f"  note: {rates} committed, below the cadence of {cadence}: this machine cannot "
            "fan out at this rate; fewer --subscribers or a longer --interval-ms measure the "
            "fan-out itself"
        )
    print(
        f"SUMMARY fanout [{label}]: outpost serve commit->receipt p50 "
        f"{med(rounds, o, lambda s: s.p(0.5)):.1f} ms p99 {med(rounds, o, lambda s: s.p(0.99)):.1f}"
        f" ms vs bare aiohttp broadcast p50 {med(rounds, b, lambda s: s.p(0.5)):.1f} ms p99 "
        f"{med(rounds, b, lambda s: s.p(0.99)):.1f} ms = p99 ratio {ratio:.2f} ({goal}); merged "
        f"updates {med(rounds, o, lambda s: s.merged_pct):.1f}%{saturated}"
    )
    if args.check and (not ok or errors):
        sys.exit(1)


@dataclass
class StallFigures:
    """``--stopped``: the stopped sockets over all rounds (medians, per socket)."""

    sockets: int
    stopped_s: float
    offered: float  # updates committed while stopped
    frames: float  # received after SIGCONT
    received: float  # bytes received after SIGCONT
    merged_pct: float
    rx_queue: float  # bytes in the kernel receive queue just before SIGCONT
    caught_up: int  # (round, socket) pairs that reached the newest commit
    pairs: int
    filled: bool  # in every round the server merged: the buffers were full
    version_errors: int


def stall_figures(rounds: Rounds) -> StallFigures:
    stalls = [the_stall(r[STOPPED]) for r in rounds]
    sockets = stalls[0].sockets
    return StallFigures(
        sockets=sockets,
        stopped_s=median(st.stopped_s for st in stalls) or 0.0,
        offered=median(st.offered for st in stalls) or 0.0,
        frames=(median(st.frames for st in stalls) or 0.0) / sockets,
        received=(median(st.bytes_after for st in stalls) or 0.0) / sockets,
        merged_pct=median(st.merged_pct for st in stalls) or 0.0,
        rx_queue=median(median(st.rx_queue) for st in stalls) or 0.0,
        caught_up=sum(st.caught_up for st in stalls),
        pairs=sum(st.sockets for st in stalls),
        # The server merges a socket's Transitions only while the socket cannot take
        # them: a stopped socket that got every update as its own frame was never full.
        filled=all(st.frames < st.offered * st.sockets for st in stalls),
        version_errors=sum(st.version_errors for st in stalls),
    )


def report_stopped(args: argparse.Namespace, label: str, rounds: Rounds, size: int) -> None:
    """The others' latency without and with the stopped client; the server's RssAnon and
    what the stopped sockets were offered and got."""
    a, s = ALONE, STOPPED
    ratio = median(r[s].p(0.99) / r[a].p(0.99) for r in rounds) or 0.0
    growth = med(rounds, s, lambda x: x.rss_growth_mb)
    st = stall_figures(rounds)
    ok_p99 = ratio < STOPPED_P99_GOAL
    ok_rss = growth < RSS_GROWTH_GOAL_MB
    # An unbounded queue would grow by about what the stopped sockets were offered: below
    # twice the goal, the RSS figure cannot tell it from a bounded one.
    offered_mb = st.offered * size * st.sockets / 1e6
    rss_verdict = verdict(ok_rss)
    if offered_mb < 2 * RSS_GROWTH_GOAL_MB:
        rss_verdict += f", not telling: {offered_mb:.1f} MB offered in all"
    p99_verdict = verdict(ok_p99) + ("" if st.filled else ", buffers never filled")
    errors = sum(r[x].version_errors + r[x].score.out_of_order for r in rounds for x in (a, s))
    errors += st.version_errors
    print()
    print(
        f"medians over {len(rounds)} rounds; latency = commit ts -> receipt of the "
        f"{args.subscribers} other sockets, without and with {st.sockets} stopped socket(s):"
    )
    print_table(rounds, ((a, "no stopped client"), (s, f"{st.sockets} socket(s) stopped")))
    print(
        f"  others' p99 with/without the stopped client {ratio:.2f} (goal < "
        f"{STOPPED_P99_GOAL:.2f}: {p99_verdict}; median of per-round ratios "
        + ", ".join(f"{r[s].p(0.99) / r[a].p(0.99):.2f}" for r in rounds)
        + f"); protocol errors (start version, order) {errors}"
    )
    print(
        f"  outpost serve RssAnon {med(rounds, s, lambda x: x.rss_kb[0]) / 1024:.1f} MB before "
        f"SIGSTOP -> {med(rounds, s, lambda x: x.rss_kb[1]) / 1024:.1f} MB at the end of the "
        f"stopped period: {growth:+.2f} MB (goal < {RSS_GROWTH_GOAL_MB:g} MB: "
        f"{rss_verdict}); the same moments without it: "
        f"{med(rounds, a, lambda x: x.rss_growth_mb):+.2f} MB"
    )
    print_stall(st, size, offered_mb)
    print(
        f"SUMMARY fanout --stopped [{label}]: others' commit->receipt p99 "
        f"{med(rounds, a, lambda x: x.p(0.99)):.1f} ms without vs "
        f"{med(rounds, s, lambda x: x.p(0.99)):.1f} ms with the stopped client = ratio "
        f"{ratio:.2f} (goal < {STOPPED_P99_GOAL:.2f}: {p99_verdict}); outpost RssAnon "
        f"{growth:+.2f} MB while stopped (goal < {RSS_GROWTH_GOAL_MB:g} MB: {rss_verdict}); "
        f"each stopped socket offered {st.offered * size / 1e6:.1f} MB, got "
        f"{st.received / 1e3:,.0f} kB after SIGCONT"
    )
    if args.check and (not (ok_p99 and ok_rss and st.filled) or errors):
        sys.exit(1)


def print_stall(st: StallFigures, size: int, offered_mb: float) -> None:
    """What each stopped socket was offered and got, and notes when it proves little."""
    print(
        f"  each stopped socket, stopped {st.stopped_s:.1f} s: offered {st.offered:.0f} updates "
        f"x {size:,} B = {st.offered * size / 1e6:.1f} MB; got {st.frames:.0f} frames, "
        f"{st.received / 1e3:,.0f} kB after SIGCONT ({st.merged_pct:.0f}% of the updates "
        f"merged); its kernel receive queue held {st.rx_queue / 1e3:,.0f} kB just before "
        f"SIGCONT; {st.caught_up} of {st.pairs} reached the newest commit"
    )
    if not st.filled:
        print(
            "  note: the stopped sockets got every update as its own frame: their buffers "
            "never filled, so the server held nothing back; a larger --payload fills them"
        )
    if offered_mb < 2 * RSS_GROWTH_GOAL_MB:
        print(
            f"  note: the stopped sockets were offered {offered_mb:.1f} MB in all: an unbounded "
            "queue would grow RssAnon by about that much, too little to tell it from a bounded "
            "one; more --stopped sockets (each is offered as much) make the figure telling"
        )


if __name__ == "__main__":
    main()
