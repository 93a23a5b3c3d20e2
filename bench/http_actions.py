"""A JSON echo HTTP action on ``outpost serve`` vs a bare aiohttp handler doing the same.

The app has one route, ``POST /echo``, an ``@http_action`` that parses the JSON body and
answers it with ``web.json_response`` (compact separators). Two server processes run on
loopback:

- **outpost**: ``outpost serve APP --port 0`` with ``OUTPOST_SITE_PORT=0`` (the real
  command; the route is served on the site port it prints).
- **baseline**: this file with ``--baseline-server``: a bare ``aiohttp.web`` app whose one
  handler does the same parse and answer.

The body is a small reading (``{"status": "success", "device": ..., "celsius": ...}``:
``bench/_loadgen.py`` accepts an answer starting ``{"status":"success"``, and the echo is
one). Before timing, both answers are checked to be the body. Each round runs the load
generator (another process, N keep-alive connections, alternating slices); medians over
rounds are printed, then one SUMMARY line (goal: outpost >= 0.5x the baseline's req/s).

    .venv/bin/python bench/http_actions.py
    .venv/bin/python bench/http_actions.py --requests 500 --rounds 3    # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from _common import (
    affinity_text,
    fmt,
    make_workdir,
    median,
    outpost_command,
    proc_cpu_seconds,
    proc_status_kb,
    start_listening,
    stop_process,
    verdict,
    write_app,
)

_HERE = Path(__file__).resolve().parent
RATIO_GOAL = 0.5

HTTP_PY = """\
import json

from aiohttp import web
from gateway import http_action, http_router

http = http_router()


def _compact(value):
    return json.dumps(value, separators=(",", ":"))


@http.route(path="/echo", method="POST")
@http_action
async def echo(ctx, request):
    return web.json_response(await request.json(), dumps=_compact)
"""

BODIES = [
    json.dumps(
        {"status": "success", "device": f"d{i}", "celsius": 20.0 + i / 10, "seq": i},
        separators=(",", ":"),
    )
    for i in range(16)
]


def serve_baseline() -> None:
    """The baseline: the same echo as a bare aiohttp handler; prints its ready line."""
    import asyncio

    from aiohttp import web

    def compact(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"))

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(await request.json(), dumps=compact)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/echo", echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        print(f"baseline listening on http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def post(url: str, body: str) -> Any:
    req = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=2000, help="requests per round and side")
    p.add_argument("--rounds", type=int, default=5, help="rounds; medians are reported (5)")
    p.add_argument("--connections", type=int, default=16, help="concurrent connections (16)")
    p.add_argument("--slices", type=int, default=10, help="turns per round and side (10)")
    p.add_argument("--dir", default=None, help="where the data directory goes ($TMPDIR)")
    p.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    p.add_argument("--baseline-server", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.baseline_server:
        serve_baseline()
        return
    if args.requests < args.slices:
        p.error("--requests must be at least --slices")

    work = make_workdir(args.dir)
    label = f"connections={args.connections}"
    print(f"bench/http_actions.py  {label}  requests={args.requests} rounds={args.rounds}")
    print(f"python {sys.version.split()[0]}, {affinity_text()}")
    servers: list[subprocess.Popen[str]] = []
    try:
        rounds = run(args, work, servers)
    finally:
        for proc in servers:
            stop_process(proc)
        shutil.rmtree(work, ignore_errors=True)
    report(args, label, rounds)


def run(
    args: argparse.Namespace, work: Path, servers: list[subprocess.Popen[str]]
) -> list[dict[str, Any]]:
    app_dir = write_app(work, {"http.py": HTTP_PY})
    outpost_cmd = [
        *outpost_command(),
        *("serve", str(app_dir), "--data-dir", str(work / "data"), "--port", "0"),
    ]
    baseline_cmd = [sys.executable, str(Path(__file__).resolve()), "--baseline-server"]
    print("outpost:  OUTPOST_SITE_PORT=0 " + " ".join(outpost_cmd))
    print("baseline: " + " ".join(baseline_cmd))
    os.environ["OUTPOST_SITE_PORT"] = "0"  # the child's setting (inherited)
    outpost, outpost_url = start_listening(
        outpost_cmd, "Outpost HTTP actions on", work / "outpost.log"
    )
    servers.append(outpost)
    baseline, baseline_url = start_listening(baseline_cmd, "listening on", work / "baseline.log")
    servers.append(baseline)
    pids = {"outpost": outpost.pid, "baseline": baseline.pid}
    for body in BODIES:  # the same answer from both: the body itself
        for name, url in (("outpost", outpost_url), ("baseline", baseline_url)):
            got = post(url + "/echo", body)
            if got != json.loads(body):
                sys.exit(f"{name} answered {str(got)[:300]} to {body}")
    print(f"checked: both echo all {len(BODIES)} bodies (~{len(BODIES[0])} bytes each)")

    limit_s = 60 + args.requests / 25
    loadgen = [
        sys.executable,
        str(_HERE / "_loadgen.py"),
        *("--target", f"outpost={outpost_url}/echo"),
        *("--target", f"baseline={baseline_url}/echo"),
        *("--requests", str(args.requests), "--connections", str(args.connections)),
        *("--slices", str(args.slices), "--max-seconds", str(limit_s)),
        *(a for b in BODIES for a in ("--body", b)),
    ]
    rounds: list[dict[str, Any]] = []
    for r in range(1, args.rounds + 1):
        if r % 2 == 0:  # which server goes first in each slice alternates by round
            i = loadgen.index("--target")
            loadgen[i + 1], loadgen[i + 3] = loadgen[i + 3], loadgen[i + 1]
        rounds.append(one_round(loadgen, pids, limit_s, r))
    for name, pid in pids.items():
        rounds[-1][name]["rss_kb"] = proc_status_kb(pid) or 0
    return rounds


def one_round(loadgen: list[str], pids: dict[str, int], limit_s: float, r: int) -> dict[str, Any]:
    cpu0 = {n: proc_cpu_seconds(pid) for n, pid in pids.items()}
    t0 = time.perf_counter()
    done = subprocess.run(loadgen, capture_output=True, text=True, timeout=limit_s + 60)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"load generator failed ({done.returncode}):\n{done.stderr}")
    out = json.loads(done.stdout)
    if "error" in out:
        sys.exit(f"load generator: {out['error']}")
    result: dict[str, Any] = {"client_cpu_s": out["client_cpu_s"], "wall_s": wall}
    for name, t in out["targets"].items():
        if t["failures"]:
            sys.exit(f"{name}: {t['failures']} failed requests, first: {t['first_failure']}")
        t["rate"] = t["requests"] / t["seconds"]
        served = t["requests"] + out["warmup"]  # the server's CPU includes the warm-up
        t["cpu_us"] = (proc_cpu_seconds(pids[name]) - cpu0[name]) / served * 1e6
        result[name] = t
    o, b = result["outpost"], result["baseline"]
    print(
        f"round {r}: outpost {o['rate']:6,.0f} req/s p50 {o['p50_ms']:5.1f} ms "
        f"p99 {o['p99_ms']:5.1f} ms ({o['cpu_us']:,.0f} us cpu/req) | baseline "
        f"{b['rate']:6,.0f} req/s p50 {b['p50_ms']:5.1f} ms p99 {b['p99_ms']:5.1f} ms "
        f"({b['cpu_us']:,.0f} us cpu/req) | ratio {o['rate'] / b['rate']:.2f}",
        flush=True,
    )
    return result


def report(args: argparse.Namespace, label: str, rounds: list[dict[str, Any]]) -> None:
    def med(side: str, key: str) -> float:
        return median(r[side][key] for r in rounds) or 0.0

    ratio = median(r["outpost"]["rate"] / r["baseline"]["rate"] for r in rounds) or 0.0
    ok = verdict(ratio >= RATIO_GOAL)
    print()
    print(f"medians over {len(rounds)} rounds ({args.requests} requests per side):")
    print(f"  {'':24} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'cpu us/req':>10} {'RssAnon':>8}")
    for side, name in (("outpost", "outpost serve (site)"), ("baseline", "bare aiohttp")):
        rss = rounds[-1][side].get("rss_kb", 0) / 1024
        print(
            f"  {name:24} {fmt(med(side, 'rate')):>7} {med(side, 'p50_ms'):7.1f} "
            f"{med(side, 'p99_ms'):7.1f} {fmt(med(side, 'cpu_us')):>10} {rss:6.1f}MB"
        )
    print(
        f"SUMMARY http_actions [{label}]: outpost serve {fmt(med('outpost', 'rate'))} req/s "
        f"p99 {med('outpost', 'p99_ms'):.1f} ms vs bare aiohttp "
        f"{fmt(med('baseline', 'rate'))} req/s p99 {med('baseline', 'p99_ms'):.1f} ms "
        f"= ratio {ratio:.2f} (goal >= {RATIO_GOAL}: {ok})"
    )
    if args.check and ratio < RATIO_GOAL:
        sys.exit(1)


if __name__ == "__main__":
    main()
