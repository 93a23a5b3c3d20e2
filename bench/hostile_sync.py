"""Issue 8's socket memory finding against a real ``outpost serve``: subscriptions with
huge arguments on one sync socket (or spread over several).

Starts ``outpost serve`` from ``--repo`` (default: this checkout; point it at another
checkout of an older commit for "before" figures) on a small app whose query takes a
string argument, then subscribes ``--subscriptions`` queries with ``--arg-mb`` MB
arguments each, round-robin over ``--sockets`` sockets, one ``ModifyQuerySet`` per
query, and reads what each socket gets back. It prints the server's RssAnon idle, at
its peak while subscribing (sampled every 50 ms), once the answers are in, and
``--settle`` seconds after every socket closed; and what the client got (results,
``FatalError`` text, close codes). No baseline: this is a reproduction, not a ratio.

    .venv/bin/python bench/hostile_sync.py
    .venv/bin/python bench/hostile_sync.py --sockets 30          # one query per socket
    .venv/bin/python bench/hostile_sync.py --repo /tmp/outpost-old   # before the cap
    .venv/bin/python bench/hostile_sync.py --floats --sockets 4 --subscriptions 4 --arg-mb 12
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp
from _common import make_workdir, proc_status_kb, raise_fd_limit, start_listening, stop_process

REPO: Final = Path(__file__).resolve().parent.parent
MB: Final = 1_000_000
SAMPLE_S: Final = 0.05
PROBE_INTERVAL_S: Final = 0.01
ANSWER_TIMEOUT_S: Final = 120.0

APP: Final = {
    "schema.py": """
from gateway import define_schema, define_table, v

schema = define_schema({"notes": define_table({"body": v.string()})})
""",
    "hog.py": """
from gateway import query, v


@query(args={"blob": v.string()})
async def size(ctx, args):
    return float(len(args["blob"]))


@query(args={"rows": v.array(v.array(v.float64()))})
async def rows(ctx, args):
    return float(sum(len(row) for row in args["rows"]))
""",
}


@dataclass
class Seen:
    """What one socket got back."""

    results: int = 0
    frames: Counter[str] = field(default_factory=Counter)
    fatal: str | None = None
    close_code: int | None = None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout to serve from")
    parser.add_argument("--subscriptions", type=int, default=30)
    parser.add_argument("--arg-mb", type=float, default=10.0, help="MB of arguments per query")
    parser.add_argument("--sockets", type=int, default=1)
    parser.add_argument(
        "--floats",
        action="store_true",
        help="arguments as arrays of floats (costly to parse and encode) instead of one "
        "string; also probes /health latency while the frames are read",
    )
    parser.add_argument("--settle", type=float, default=2.0, help="s after close to read RSS")
    parser.add_argument("--dir", default=None, help="where the temporary app and data go")
    return parser.parse_args()


def start_server(repo: Path, work: Path) -> tuple[object, int, str]:
    """``outpost serve`` from ``repo``: its process, pid and base URL."""
    app = work / "app" / "convex"
    app.mkdir(parents=True)
    for name, text in APP.items():
        (app / name).write_text(text)
    # The child imports ``gateway`` from ``repo`` first, whatever is installed here;
    # ``-P``: not from the current directory either.
    os.environ["PYTHONPATH"] = f"{repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    cmd = [sys.executable, "-P", "-m", "gateway.cli", "serve", str(work / "app")]
    cmd += ["--host", "127.0.0.1", "--port", "0", "--data-dir", str(work / "data")]
    proc, url = start_listening(cmd, "Outpost listening on", work / "serve.log")
    return proc, proc.pid, url


def imported_from() -> str:
    """Where a child started like the server imports ``gateway`` from."""
    code = "import gateway, pathlib; print(pathlib.Path(gateway.__file__).parent.parent)"
    return subprocess.check_output([sys.executable, "-P", "-c", code], text=True).strip()


async def read_socket(ws: aiohttp.ClientWebSocketResponse, seen: Seen) -> None:
    """Every frame until the server closes the socket (or the client does)."""
    async for msg in ws:
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        frame = json.loads(msg.data)
        seen.frames[frame["type"]] += 1
        if frame["type"] == "Transition":
            seen.results += sum(m["type"] == "QueryUpdated" for m in frame["modifications"])
        elif frame["type"] == "FatalError":
            seen.fatal = frame["error"]
    seen.close_code = ws.close_code


async def sample_peak(pid: int, stop: asyncio.Event) -> int:
    peak = 0
    while not stop.is_set():
        peak = max(peak, proc_status_kb(pid) or 0)
        await asyncio.sleep(SAMPLE_S)  # a sampling interval, not a wait for a condition
    return peak


def query_args(args: argparse.Namespace) -> tuple[str, dict[str, object]]:
    """The query and its arguments of about ``--arg-mb`` MB."""
    size = int(args.arg_mb * MB)
    if not args.floats:
        return "hog:size", {"blob": "x" * size}
    row = [random.random() for _ in range(8000)]  # Convex arrays hold at most 8,192
    return "hog:rows", {"rows": [row] * (size // len(json.dumps(row)) + 1)}


class HealthProbe:
    """``GET /health`` in a loop on a thread of its own (the frames it probes during are
    encoded beforehand, so this process's loop does not delay it): latencies in s."""

    def __init__(self, url: str) -> None:
        self.url = url + "/health"
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(PROBE_INTERVAL_S):
            started = time.monotonic()
            with urllib.request.urlopen(self.url, timeout=30) as answer:
                answer.read()
            self.latencies.append(time.monotonic() - started)


async def drive(args: argparse.Namespace, pid: int, url: str) -> None:
    rss = lambda: proc_status_kb(pid) or 0  # noqa: E731
    idle = rss()
    path, query = query_args(args)
    probe = HealthProbe(url) if args.floats else contextlib.nullcontext()
    async with aiohttp.ClientSession() as session:
        sockets = [
            await session.ws_connect(f"{url}/api/1.48.0/sync", max_msg_size=0)
            for _ in range(args.sockets)
        ]
        seen = [Seen() for _ in sockets]
        readers = [asyncio.create_task(read_socket(ws, s)) for ws, s in zip(sockets, seen)]
        stop = asyncio.Event()
        peak_task = asyncio.create_task(sample_peak(pid, stop))
        versions = [0] * len(sockets)
        for i, ws in enumerate(sockets):
            await ws.send_str(json.dumps({"type": "Connect", "sessionId": f"hog-{i}"}))
        frames = []
        for q in range(args.subscriptions):
            i = q % len(sockets)
            add = {"type": "Add", "queryId": q, "udfPath": path, "args": [query]}
            base, versions[i] = versions[i], versions[i] + 1
            modify = {"type": "ModifyQuerySet", "baseVersion": base, "newVersion": base + 1}
            frames.append((i, json.dumps({**modify, "modifications": [add]})))
        with probe:
            started = time.monotonic()
            for i, frame in frames:
                if sockets[i].closed:
                    continue
                try:
                    await sockets[i].send_str(frame)
                except ConnectionError:
                    continue  # refused and closed meanwhile
            sent_s = time.monotonic() - started
            await answers(sockets, seen, versions)
        answered = rss()
        for ws in sockets:
            await ws.close()
        await asyncio.gather(*readers)
        stop.set()
        peak = await peak_task
    await asyncio.sleep(args.settle)
    after = rss()
    report(args, idle, peak, answered, after, seen, sent_s)
    if isinstance(probe, HealthProbe):
        health = sorted(probe.latencies)
        print(
            f"/health while the frames were read: {len(health)} probes, "
            f"max {health[-1] * 1000:.0f} ms, p50 {health[len(health) // 2] * 1000:.1f} ms"
        )


async def answers(
    sockets: list[aiohttp.ClientWebSocketResponse], seen: list[Seen], versions: list[int]
) -> None:
    """Until every open socket has a result for each query it sent (or the deadline)."""
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while not all(ws.closed or s.results >= v for ws, s, v in zip(sockets, seen, versions)):
        if time.monotonic() > deadline:
            print(f"not every answer came within {ANSWER_TIMEOUT_S:.0f} s")
            return
        await asyncio.sleep(SAMPLE_S)


def report(
    args: argparse.Namespace,
    idle: int,
    peak: int,
    answered: int,
    after: int,
    seen: list[Seen],
    sent_s: float,
) -> None:
    mb = lambda kb: f"{kb / 1024:,.1f} MB"  # noqa: E731
    print(f"server from {args.repo} (gateway imported from {args.imported})")
    print(
        f"{args.subscriptions} subscriptions x {args.arg_mb:g} MB arguments over "
        f"{args.sockets} socket(s), sent in {sent_s:.1f} s"
    )
    print(f"server RssAnon: idle {mb(idle)}, peak while subscribing {mb(peak)}, ", end="")
    print(f"answered {mb(answered)}, {args.settle:g} s after close {mb(after)}")
    results = sum(s.results for s in seen)
    fatal = Counter(s.fatal for s in seen if s.fatal)
    codes = Counter(s.close_code for s in seen)
    print(f"client got: {results} results; close codes {dict(codes)}")
    for text, count in fatal.items():
        print(f"  FatalError x{count}: {text}")
    print(
        f"SUMMARY peak {mb(peak)} after-close {mb(after)} results {results} "
        f"fatal {sum(fatal.values())}"
    )


def main() -> None:
    args = parse_args()
    raise_fd_limit()
    work = make_workdir(args.dir)
    proc, pid, url = start_server(args.repo.resolve(), work)
    args.imported = imported_from()
    try:
        asyncio.run(drive(args, pid, url))
    finally:
        stop_process(proc)  # type: ignore[arg-type]
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
