"""``POST /api/query`` over real HTTP: ``outpost serve`` vs a bare aiohttp server.

The app is ``bench/queries.py``'s (``items:page``: ``with_index("by_group", ...)
.take(100)`` over 4000 documents in 16 groups), written to a temporary directory and
seeded through an in-process ``Gateway``, which is then closed. Two server processes
then run on loopback on that one database file:

- **outpost**: ``outpost serve APP --data-dir D --port 0`` (the real command).
- **baseline**: ``bench/_baseline_server.py``, a bare aiohttp handler that runs the same
  SELECT (``indexes`` joined to ``documents`` over the same key range) on a read-only
  sqlite3 connection in a thread, ``json.loads`` each body and answers ``json.dumps``
  of the documents in the same envelope.

Before timing, the bench checks that both return the same documents for every group.
Each round starts ``bench/_loadgen.py`` (another process: asyncio + aiohttp, N keep-alive
connections), which sends the same number of requests to each server in alternating
slices and reports requests/s and latency percentiles. Medians over rounds are printed.

    .venv/bin/python bench/http_api.py
    .venv/bin/python bench/http_api.py --connections 64 --requests 4000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from _common import (
    affinity_text,
    filesystem_of,
    first_line_with,
    fmt,
    make_workdir,
    median,
    outpost_command,
    stop_process,
    verdict,
    write_app,
)
from queries import APP, INDEX, PATH, TABLE, group_name, make_docs

from gateway import Gateway, Settings
from gateway.store.layout import DB_FILENAME
from gateway.values import encode_index_key

_HERE = Path(__file__).resolve().parent

RATIO_GOAL = 0.5
START_TIMEOUT_S = 60.0


def wait_for_line(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """The first stdout line containing ``marker``; exits if the process dies or stalls."""
    assert proc.stdout is not None
    line = first_line_with(proc.stdout, marker, timeout)
    if line is None:
        proc.kill()
        sys.exit(f"{proc.args!r} did not print {marker!r} within {timeout:.0f} s")
    return line


def start_server(cmd: list[str], marker: str, log: Path) -> tuple[subprocess.Popen[str], str]:
    """Start ``cmd``; returns the process and the base URL from its ready line."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=log.open("w"), text=True, start_new_session=True
    )
    line = wait_for_line(proc, marker, START_TIMEOUT_S)
    return proc, line[line.index("http://") :]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a whole process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_anon_kb(pid: int) -> int | None:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return None


def post(url: str, body: str) -> Any:
    req = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


async def seed(app_dir: Path, data_dir: Path, groups: int, per_group: int) -> int:
    """Insert the documents in-process; returns the ``by_group`` index id."""
    async with Gateway.open(app_dir, data_dir, Settings()) as gw:
        docs = make_docs(groups, per_group)
        for i in range(0, len(docs), 200):
            await gw.run_mutation("items:seed", {"docs": docs[i : i + 200]})
        info = gw.store.catalog.table(TABLE)
        assert info is not None
        return info.indexes[INDEX].index_id


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=2000, help="requests per round and side")
    p.add_argument("--rounds", type=int, default=5, help="rounds; medians are reported (5)")
    p.add_argument("--connections", type=int, default=16, help="concurrent connections (16)")
    p.add_argument("--slices", type=int, default=10, help="turns per round and side (10)")
    p.add_argument("--limit", type=int, default=100, help="documents per query (100)")
    p.add_argument("--groups", type=int, default=16, help="index values (16)")
    p.add_argument("--per-group", type=int, default=250, help="documents per value (250)")
    p.add_argument("--dir", default=None, help="where the database file goes (default: $TMPDIR)")
    p.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    args = p.parse_args()
    if args.requests < args.slices:
        p.error("--requests must be at least --slices")

    work = make_workdir(args.dir)
    label = f"limit={args.limit} connections={args.connections}"
    print(f"bench/http_api.py  {label}  requests={args.requests} rounds={args.rounds}")
    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {affinity_text()}")
    print(f"files in {work} on {filesystem_of(work)}; {args.groups * args.per_group} documents")
    servers: list[subprocess.Popen[str]] = []
    try:
        rounds, sizes = run(args, work, servers)
    finally:
        for proc in servers:
            stop_process(proc)
        shutil.rmtree(work, ignore_errors=True)
    report(args, label, rounds, sizes)


def run(
    args: argparse.Namespace, work: Path, servers: list[subprocess.Popen[str]]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    app_dir = write_app(work, APP)
    data_dir = work / "data"
    index_id = asyncio.run(seed(app_dir, data_dir, args.groups, args.per_group))
    groups = [group_name(g) for g in range(args.groups)]
    keys = work / "keys.json"
    keys.write_text(json.dumps({g: encode_index_key([g]).hex() for g in groups}))

    outpost_cmd = [
        *outpost_command(),
        *("serve", str(app_dir), "--data-dir", str(data_dir), "--port", "0"),
    ]
    baseline_cmd = [
        sys.executable,
        str(_HERE / "_baseline_server.py"),
        *("--db", str(data_dir / DB_FILENAME), "--index-id", str(index_id)),
        *("--keys", str(keys), "--threads", str(Settings().reader_threads)),
    ]
    print("outpost:  " + " ".join(outpost_cmd))
    print("baseline: " + " ".join(baseline_cmd))
    outpost, outpost_url = start_server(outpost_cmd, "Outpost listening on", work / "outpost.log")
    servers.append(outpost)
    baseline, baseline_url = start_server(baseline_cmd, "listening on", work / "baseline.log")
    servers.append(baseline)
    pids = {"outpost": outpost.pid, "baseline": baseline.pid}

    bodies = [
        json.dumps(
            {
                "path": PATH,
                "args": {"group": g, "limit": float(args.limit)},
                "format": "convex_encoded_json",
            }
        )
        for g in groups
    ]
    sizes: dict[str, int] = {}
    for group, body in zip(groups, bodies, strict=True):  # the same documents from both
        got = {name: post(url + "/api/query", body) for name, url in (
            ("outpost", outpost_url), ("baseline", baseline_url))}  # fmt: skip
        for name, answer in got.items():
            if answer.get("status") != "success" or len(answer["value"]) != min(
                args.limit, args.per_group
            ):
                sys.exit(f"{name} answered {str(answer)[:300]} for group {group!r}")
        if got["outpost"]["value"] != got["baseline"]["value"]:
            sys.exit(f"outpost and the baseline disagree on group {group!r}")
        if not sizes:
            sizes = {n: len(json.dumps(a, separators=(",", ":"))) for n, a in got.items()}
    print(
        f"checked: both return the same {args.limit} documents for all {len(groups)} groups "
        f"(answer ~{sizes['outpost']:,} bytes)"
    )

    limit_s = 60 + args.requests / 25  # both sides at >= 50 req/s, else give up
    loadgen = [
        sys.executable,
        str(_HERE / "_loadgen.py"),
        *("--target", f"outpost={outpost_url}/api/query"),
        *("--target", f"baseline={baseline_url}/api/query"),
        *("--requests", str(args.requests), "--connections", str(args.connections)),
        *("--slices", str(args.slices), "--max-seconds", str(limit_s)),
        *(a for b in bodies for a in ("--body", b)),
    ]
    print(
        f"load generator: {sys.executable} bench/_loadgen.py --target outpost=... "
        f"--target baseline=... --requests {args.requests} --connections {args.connections} "
        f"--slices {args.slices} --body ... (x{len(bodies)})"
    )
    rounds: list[dict[str, Any]] = []
    for r in range(1, args.rounds + 1):
        if r % 2 == 0:  # which server goes first in each slice alternates by round
            i = loadgen.index("--target")
            loadgen[i + 1], loadgen[i + 3] = loadgen[i + 3], loadgen[i + 1]
        cpu0 = {n: cpu_seconds(pid) for n, pid in pids.items()}
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
            t["cpu_us"] = (cpu_seconds(pids[name]) - cpu0[name]) / served * 1e6
            result[name] = t
        rounds.append(result)
        o, b = result["outpost"], result["baseline"]
        print(
            f"round {r}: outpost {o['rate']:6,.0f} req/s p50 {o['p50_ms']:5.1f} ms "
            f"p99 {o['p99_ms']:5.1f} ms ({o['cpu_us']:,.0f} us cpu/req) | baseline "
            f"{b['rate']:6,.0f} req/s p50 {b['p50_ms']:5.1f} ms p99 {b['p99_ms']:5.1f} ms "
            f"({b['cpu_us']:,.0f} us cpu/req) | ratio {o['rate'] / b['rate']:.2f} "
            f"| client cpu {out['client_cpu_s']:.1f}s",
            flush=True,
        )
    for name, pid in pids.items():
        kb = rss_anon_kb(pid)
        sizes[f"{name}_rss_anon_kb"] = kb or 0
    return rounds, sizes


def report(
    args: argparse.Namespace, label: str, rounds: list[dict[str, Any]], sizes: dict[str, int]
) -> None:
    def med(side: str, key: str) -> float:
        return median(r[side][key] for r in rounds) or 0.0

    ratio = median(r["outpost"]["rate"] / r["baseline"]["rate"] for r in rounds) or 0.0
    p99_ratio = median(r["outpost"]["p99_ms"] / r["baseline"]["p99_ms"] for r in rounds) or 0.0
    ok = verdict(ratio >= RATIO_GOAL)
    n = args.requests
    print()
    print(f"medians over {len(rounds)} rounds ({n} requests per side, {args.connections} conns):")
    print(
        f"  {'':34} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'cpu us/req':>10} "
        f"{'RssAnon':>8}"
    )
    for side, name in (("outpost", "outpost serve"), ("baseline", "bare aiohttp + sqlite3")):
        rss = sizes.get(f"{side}_rss_anon_kb", 0) / 1024
        print(
            f"  {name:34} {fmt(med(side, 'rate')):>7} {med(side, 'p50_ms'):7.1f} "
            f"{med(side, 'p99_ms'):7.1f} {med(side, 'max_ms'):7.1f} {fmt(med(side, 'cpu_us')):>10} "
            f"{rss:6.1f}MB"
        )
    print(
        f"  ratio outpost/baseline req/s {ratio:.2f} (goal >= {RATIO_GOAL}: {ok}; median of "
        f"per-round ratios); p99 outpost/baseline {p99_ratio:.2f}"
    )
    client = median(r["client_cpu_s"] / (2 * n) * 1e6 for r in rounds) or 0.0
    print(f"  load generator cpu {client:.0f} us/request (same client for both sides)")
    print(
        f"SUMMARY http [{label}]: outpost serve {fmt(med('outpost', 'rate'))} req/s "
        f"p99 {med('outpost', 'p99_ms'):.1f} ms vs bare aiohttp+sqlite3 "
        f"{fmt(med('baseline', 'rate'))} req/s p99 {med('baseline', 'p99_ms'):.1f} ms "
        f"= ratio {ratio:.2f} (goal >= {RATIO_GOAL}: {ok})"
    )
    if args.check and ratio < RATIO_GOAL:
        sys.exit(1)


if __name__ == "__main__":
    main()
