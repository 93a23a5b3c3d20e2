"""Hostile HTTP clients against a real ``outpost serve`` (issue 8, sections 2 and 3).

Each phase starts a fresh server, ``python -m gateway.cli serve APP --data-dir D
--port 0`` with ``PYTHONPATH=--repo`` (default: this checkout), so the same bench gives
"before" figures from an older checkout. All traffic is on loopback; every loop ends
by itself (counts and deadlines).

1. aborted uploads: ``--uploads`` (60) times ``POST /api/query`` declaring
   ``--declared`` (16,000,000) bytes, sending ``--upload-mb`` (15) MB, then closing:
   the server's RssAnon before, at its peak and after.
2. held uploads: ``--held`` (40) connections each send the same upload and keep the
   connection open: the server's RssAnon at its peak and how many got 503.
3. big JSON: ``--big-bodies`` (4) concurrent valid calls of ``--big-mb`` (14) MB
   (arrays of 8,000 floats): ``/health`` latency (max, p50) while they are parsed.
4. slow clients: the server under ``ulimit -n --nofile`` (1024, soft and hard), then
   ``--slow-headers`` (2,000) connections that send a request head one byte every
   ``--drip-s`` (5) s and ``--slow-bodies`` (1,000) that send a head and then their
   body the same way, reopened when the server closes them, for ``--duration`` (20)
   s: how many ``/health`` probes (one every 0.5 s, 2 s timeout) answered 200, and the
   log lines and bytes the server wrote meanwhile.

    .venv/bin/python bench/hostile_http.py
    .venv/bin/python bench/hostile_http.py --repo /tmp/outpost-old --phases 1,2
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from _common import first_line_with, proc_status_kb, raise_fd_limit, stop_process

ROOT = Path(__file__).resolve().parent.parent
MB = 1_000_000
APP = """
from gateway import query

@query
async def f(ctx, args):
    return None
"""


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    log: Path

    def rss_mb(self) -> float:
        kb = proc_status_kb(self.proc.pid)
        return (kb or 0) / 1024


def _limit_fds(nofile: int | None) -> Callable[[], None] | None:
    if nofile is None:
        return None

    def limit() -> None:  # in the child, before exec: soft and hard, so it cannot raise it
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    return limit


@contextmanager
def serving(repo: Path, work: Path, nofile: int | None = None) -> Iterator[Server]:
    """A fresh ``outpost serve`` from ``repo`` on a new data directory."""
    app = work / "app"
    (app / "convex").mkdir(parents=True, exist_ok=True)
    (app / "convex" / "m.py").write_text(APP)
    data = Path(tempfile.mkdtemp(prefix="data-", dir=work))
    log = data.with_suffix(".log")
    env = {**os.environ, "PYTHONPATH": str(repo)}
    cmd = [sys.executable, "-m", "gateway.cli", "serve", str(app), "--data-dir", str(data)]
    proc = subprocess.Popen(
        [*cmd, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        env=env,
        cwd=work,
        preexec_fn=_limit_fds(nofile),
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = first_line_with(proc.stdout, "listening on", 60)
    if line is None:
        proc.kill()
        sys.exit(f"the server did not start (log: {log})")
    try:
        yield Server(proc, int(line.rsplit(":", 1)[1]), log)
    finally:
        stop_process(proc)


def upload_head(declared: int) -> bytes:
    return (
        f"POST /api/query HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()


async def send_upload(
    writer: asyncio.StreamWriter, declared: int, size: int, stall_s: float = 10.0
) -> bool:
    """Head and ``size`` body bytes; False when the server stopped taking them."""
    writer.write(upload_head(declared))
    piece = b"x" * (256 * 1024)
    sent = 0
    try:
        while sent < size:
            writer.write(piece[: size - sent])
            sent += min(len(piece), size - sent)
            await asyncio.wait_for(writer.drain(), stall_s)
    except (TimeoutError, ConnectionError):
        return False
    return True


async def aborted_uploads(args: argparse.Namespace, server: Server) -> None:
    before = server.rss_mb()
    peak = before
    for _ in range(args.uploads):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await send_upload(writer, args.declared, args.upload_mb * MB)
        writer.transport.abort()
        peak = max(peak, server.rss_mb())
    await asyncio.sleep(2)  # what the server still reads from the kernel, then settles
    after = server.rss_mb()
    print(
        f"1. {args.uploads} aborted {args.upload_mb} MB uploads: RssAnon {before:.0f} MB "
        f"before, peak {max(peak, after):.0f} MB, {after:.0f} MB after"
    )


async def held_uploads(args: argparse.Namespace, server: Server) -> None:
    statuses: list[int] = []
    peak = [server.rss_mb()]
    stop = asyncio.Event()

    async def hold() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        sender = asyncio.create_task(send_upload(writer, args.declared, args.upload_mb * MB))
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 60)
            statuses.append(int(head.split()[1]))
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        await sender
        await stop.wait()  # held open until every upload is in
        writer.transport.abort()

    async def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], server.rss_mb())
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    holders = [asyncio.create_task(hold()) for _ in range(args.held)]
    deadline = time.monotonic() + 60
    while sum(1 for h in holders if h.done()) < args.held and time.monotonic() < deadline:
        if len(statuses) >= args.held:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)
    peak[0] = max(peak[0], server.rss_mb())
    stop.set()
    await asyncio.gather(*holders, sampler, return_exceptions=True)
    refused = statuses.count(503)
    print(
        f"2. {args.held} held {args.upload_mb} MB uploads: RssAnon peak {peak[0]:.0f} MB; "
        f"{refused} got 503, {len(statuses) - refused} another answer "
        f"({sorted(set(statuses))}), {args.held - len(statuses)} none"
    )


def big_body(size: int) -> bytes:
    row = [i + 0.25 for i in range(8000)]
    rows = {f"r{i}": row for i in range(size // len(json.dumps(row)) + 1)}
    return json.dumps({"path": "m:f", "args": {"rows": rows}}).encode()


async def health_latencies(url: str, done: asyncio.Event) -> list[float]:
    latencies = []
    async with aiohttp.ClientSession(url) as session:
        while not done.is_set():
            started = time.perf_counter()
            async with session.get("/health") as resp:
                await resp.read()
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)
    return latencies


async def big_json(args: argparse.Namespace, server: Server) -> None:
    body = big_body(args.big_mb * MB)
    url = f"http://127.0.0.1:{server.port}"
    done = asyncio.Event()
    probe = asyncio.create_task(health_latencies(url, done))
    started = time.perf_counter()
    async with aiohttp.ClientSession(url, timeout=aiohttp.ClientTimeout(total=300)) as session:

        async def post() -> int:
            async with session.post("/api/query", data=io.BytesIO(body)) as resp:
                await resp.read()
                return resp.status

        statuses = await asyncio.gather(*(post() for _ in range(args.big_bodies)))
    took = time.perf_counter() - started
    done.set()
    lat = await probe
    print(
        f"3. {args.big_bodies} x {len(body) / MB:.1f} MB JSON bodies (answers {statuses}, "
        f"{took:.1f} s): /health max {max(lat) * 1000:.0f} ms, p50 "
        f"{statistics.median(lat) * 1000:.1f} ms over {len(lat)} probes"
    )


@dataclass
class Pressure:
    opened: int = 0
    failed_opens: int = 0
    probes: list[str] = field(default_factory=list)


async def slow_client(port: int, head: bytes, deadline: float, drip_s: float, p: Pressure) -> None:
    """Open, send ``head`` slowly (or a head and then a slow body); reopen when closed."""
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        except (TimeoutError, OSError):
            p.failed_opens += 1
            await asyncio.sleep(drip_s)
            continue
        p.opened += 1
        try:
            writer.write(head)
            while time.monotonic() < deadline and not reader.at_eof():
                try:
                    await asyncio.wait_for(reader.read(4096), drip_s)
                except TimeoutError:
                    writer.write(b"x")  # one more byte of the head or body
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()


PROBE = """
import socket, sys, time
port, duration = int(sys.argv[1]), float(sys.argv[2])
deadline = time.monotonic() + duration
while True:
    outcome = "timeout"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(
                b"GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n"
            )
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        outcome = answer[9:12].decode() if answer.startswith(b"HTTP/1.") else "closed"
    except socket.timeout:
        pass
    except OSError as exc:
        outcome = type(exc).__name__
    print(outcome, flush=True)
    if time.monotonic() >= deadline:
        break
    time.sleep(0.5)
"""


async def probe_health(port: int, duration_s: float, p: Pressure) -> None:
    """``GET /health`` on a new connection every 0.5 s from another process (this one is
    busy with the attackers; a probe that waits on our loop would look slow itself)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PROBE, str(port), str(duration_s), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    p.probes.extend(out.decode().split())


def templates(log: bytes, top: int = 3) -> str:
    """The most frequent log lines with their numbers blanked, with counts."""
    counts: dict[str, int] = {}
    for line in log.decode(errors="replace").splitlines():
        key = re.sub(r"\d+", "#", line.split(": ", 1)[-1])[:90]
        counts[key] = counts.get(key, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    return "; ".join(f"{n} x {text!r}" for text, n in ranked) or "none"


async def slow_clients(args: argparse.Namespace, server: Server) -> None:
    log_before = server.log.stat().st_size
    lines_before = server.log.read_bytes().count(b"\n")
    deadline = time.monotonic() + args.duration
    p = Pressure()
    slow_head = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
    slow_body = upload_head(1000) + b'{"path": "m:f", "args": {"pad": "'
    clients = [
        *(
            slow_client(server.port, slow_head, deadline, args.drip_s, p)
            for _ in range(args.slow_headers)
        ),
        *(
            slow_client(server.port, slow_body, deadline, args.drip_s, p)
            for _ in range(args.slow_bodies)
        ),
    ]
    await asyncio.gather(*clients, probe_health(server.port, args.duration, p))
    log = server.log.read_bytes()
    lines = log.count(b"\n") - lines_before
    ok = p.probes.count("200")
    outcomes = {o: p.probes.count(o) for o in sorted(set(p.probes))}
    print(
        f"4. ulimit -n {args.nofile}, {args.slow_headers} slow-header + {args.slow_bodies} "
        f"slow-body clients for {args.duration:.0f} s ({p.opened} connections opened, "
        f"{p.failed_opens} opens failed): /health answered 200 to {ok}/{len(p.probes)} "
        f"probes {outcomes}; log +{lines} lines, +{(len(log) - log_before) / 1e6:.2f} MB"
    )
    print(f"   most frequent log lines: {templates(log[log_before:])}")
    after = Pressure()
    await probe_health(server.port, 0, after)
    print(f"   after the attack /health answers: {after.probes}")


PHASES = {"1": aborted_uploads, "2": held_uploads, "3": big_json, "4": slow_clients}


def main(args: argparse.Namespace) -> None:
    raise_fd_limit()  # this process holds thousands of client sockets
    repo = Path(args.repo).resolve()
    print(f"server from {repo}")
    with tempfile.TemporaryDirectory(prefix="outpost-bench-") as tmp:
        for phase in args.phases.split(","):
            nofile = args.nofile if phase == "4" else None
            with serving(repo, Path(tmp), nofile) as server:
                asyncio.run(PHASES[phase](args, server))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=str(ROOT), help="checkout to serve from")
    parser.add_argument("--phases", default="1,2,3,4", help="which phases, e.g. 1,3")
    parser.add_argument("--uploads", type=int, default=60)
    parser.add_argument("--upload-mb", type=int, default=15)
    parser.add_argument("--declared", type=int, default=16_000_000)
    parser.add_argument("--held", type=int, default=40)
    parser.add_argument("--big-bodies", type=int, default=4)
    parser.add_argument("--big-mb", type=int, default=14)
    parser.add_argument("--nofile", type=int, default=1024)
    parser.add_argument("--slow-headers", type=int, default=2000)
    parser.add_argument("--slow-bodies", type=int, default=1000)
    parser.add_argument("--drip-s", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=20.0)
    return parser.parse_args()


if __name__ == "__main__":
    main(parse())
