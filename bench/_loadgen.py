"""HTTP load generator for ``bench/http_api.py``, run as its own process (not a benchmark).

``N`` concurrent keep-alive connections (one aiohttp session, ``limit=N``) send
``POST`` requests with prepared JSON bodies. Every target named with ``--target
NAME=URL`` gets the same ``--requests``, split into ``--slices`` turns that rotate
between the targets, so a burst of load from elsewhere falls on all of them alike.
Each answer is read whole and must be HTTP 200 with ``"status":"success"``.

Prints one JSON object on stdout: per target the requests, wall seconds of its
turns, latency percentiles (ms) and failures; and the client's own CPU seconds.

    python bench/_loadgen.py --target a=http://127.0.0.1:8000/api/query \\
        --body '{"path":"items:page","args":{"group":"g","limit":100}}' --requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import aiohttp

SUCCESS = b'{"status":"success"'


def percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def turn(
    session: aiohttp.ClientSession,
    url: str,
    bodies: list[bytes],
    count: int,
    connections: int,
    deadline: float,
    latencies: list[float],
    failures: list[str],
) -> float:
    """``count`` requests over ``connections`` workers; returns the wall seconds."""
    feed = iter(range(count))
    headers = {"Content-Type": "application/json"}

    async def worker() -> None:
        for i in feed:
            if time.monotonic() > deadline:
                failures.append("deadline")
                return
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=bodies[i % len(bodies)], headers=headers) as r:
                    payload = await r.read()
                    ok = r.status == 200 and payload.startswith(SUCCESS)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            latencies.append(time.perf_counter() - t0)
            if not ok:
                failures.append(f"HTTP {r.status}: {payload[:200]!r}")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - t0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    targets = [t.split("=", 1) for t in args.target]
    bodies = [b.encode() for b in args.body]
    deadline = time.monotonic() + args.max_seconds
    timeout = aiohttp.ClientTimeout(total=args.request_timeout)
    connector = aiohttp.TCPConnector(limit=args.connections, force_close=False)
    results: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for name, url in targets:  # open the connections, warm both servers
            failures: list[str] = []
            await turn(session, url, bodies, args.warmup, args.connections, deadline, [], failures)
            if failures:
                return {"error": f"{name}: warm-up failed: {failures[0]}"}
        latencies: dict[str, list[float]] = {name: [] for name, _ in targets}
        seconds = dict.fromkeys(latencies, 0.0)
        failed: dict[str, list[str]] = {name: [] for name in latencies}
        cpu0 = time.process_time()
        for s in range(args.slices):
            part = (s + 1) * args.requests // args.slices - s * args.requests // args.slices
            k = s % len(targets)
            for name, url in targets[k:] + targets[:k]:
                seconds[name] += await turn(
                    session,
                    url,
                    bodies,
                    part,
                    args.connections,
                    deadline,
                    latencies[name],
                    failed[name],
                )
        cpu = time.process_time() - cpu0
    for name in latencies:
        ordered = sorted(latencies[name])
        results[name] = {
            "requests": len(ordered),
            "seconds": seconds[name],
            "p50_ms": (percentile(ordered, 0.50) or 0) * 1e3,
            "p99_ms": (percentile(ordered, 0.99) or 0) * 1e3,
            "max_ms": (ordered[-1] if ordered else 0) * 1e3,
            "failures": len(failed[name]),
            "first_failure": failed[name][0] if failed[name] else None,
        }
    return {"targets": results, "client_cpu_s": cpu, "warmup": args.warmup}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--target", action="append", required=True, help="NAME=URL (repeatable)")
    p.add_argument("--body", action="append", required=True, help="a JSON body (repeatable)")
    p.add_argument("--requests", type=int, default=2000, help="timed requests per target")
    p.add_argument("--connections", type=int, default=16, help="concurrent connections")
    p.add_argument("--slices", type=int, default=10, help="turns per target")
    p.add_argument("--warmup", type=int, default=64, help="untimed requests per target first")
    p.add_argument("--max-seconds", type=float, default=120.0, help="give up after this")
    p.add_argument("--request-timeout", type=float, default=30.0)
    args = p.parse_args()
    out = asyncio.run(run(args))
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
