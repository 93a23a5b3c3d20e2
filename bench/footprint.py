"""Footprint of ``outpost serve``: start -> ``/health`` 200, and RssAnon when idle.

Each run starts ``outpost serve examples/greenhouse --data-dir D --port 0`` as a
subprocess, twice: on a new data directory, then again on the one it just made (a
restart, what systemd does). The clock runs from just before ``Popen`` until
``GET /health`` answers 200 (the port comes from the ``Outpost listening on`` line).
After ``--idle`` seconds of idling, ``RssAnon`` (and ``VmRSS``) are read from
``/proc/<pid>/status``; then the server gets SIGTERM.

Baseline in the same run, alternating with Outpost: a bare ``python -c "import asyncio,
aiohttp ..."`` process serving ``/health`` on loopback, measured the same way, so the
figures can be compared on this machine (the interpreter plus aiohttp is a floor).

If a goal is missed (or with ``--importtime``), the serve command runs once more
under ``python -X importtime`` and the 15 imports with the largest cumulative time
are printed, so the heavy ones can be made lazy.

    .venv/bin/python bench/footprint.py
    .venv/bin/python bench/footprint.py --runs 9 --importtime
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from _common import (
    affinity_text,
    first_line_with,
    make_workdir,
    median,
    outpost_command,
    stop_process,
    verdict,
)

_HERE = Path(__file__).resolve().parent

ROOT = _HERE.parent
START_GOAL_S = 1.5
RSS_GOAL_MB = 60.0
READY_TIMEOUT_S = 30.0

BASELINE_SCRIPT = """\
import asyncio, aiohttp
from aiohttp import web

async def health(request):
    return web.json_response({"status": "ok"})

async def main():
    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(f"listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@dataclass
class Sample:
    ready_line_s: float  # Popen -> the "listening" line on stdout
    health_s: float  # Popen -> GET /health 200
    rss_anon_mb: float
    vm_rss_mb: float
    threads: int


def status_fields(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def measure(cmd: list[str], marker: str, idle: float, log: Path) -> Sample:
    """Start ``cmd``, time it to ``/health`` 200, idle, read its memory, stop it."""
    with log.open("a") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
        try:
            assert proc.stdout is not None
            line = first_line_with(proc.stdout, marker, READY_TIMEOUT_S)
            t_line = time.perf_counter() - t0
            if line is None:
                sys.exit(f"{' '.join(cmd)} printed no {marker!r} in {READY_TIMEOUT_S} s; see {log}")
            url = line[line.index("http://") :] + "/health"
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=2) as r:
                        if r.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.perf_counter() - t0 > READY_TIMEOUT_S:
                    sys.exit(f"{url} did not answer 200 within {READY_TIMEOUT_S} s")
                time.sleep(0.005)
            t_health = time.perf_counter() - t0
            time.sleep(idle)
            status = status_fields(proc.pid)
            return Sample(
                t_line,
                t_health,
                int(status["RssAnon"].split()[0]) / 1024,
                int(status["VmRSS"].split()[0]) / 1024,
                int(status["Threads"]),
            )
        finally:
            stop_process(proc)


def import_times(cmd: list[str], log: Path) -> list[tuple[int, int, str]]:
    """``(self_us, cumulative_us, module)`` of every import while ``cmd`` starts."""
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
        try:
            assert proc.stdout is not None
            if first_line_with(proc.stdout, "Outpost listening on", READY_TIMEOUT_S) is None:
                sys.exit(f"{' '.join(cmd)} did not get ready; see {log}")
        finally:
            stop_process(proc)
    rows = []
    for line in log.read_text().splitlines():
        if line.startswith("import time:") and "|" in line:
            self_us, cumulative, name = (part.strip() for part in line[12:].split("|", 2))
            if self_us.isdigit():
                rows.append((int(self_us), int(cumulative), name.strip()))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=7, help="starts per side; medians (7)")
    p.add_argument("--idle", type=float, default=2.0, help="idle seconds before RssAnon (2)")
    p.add_argument("--app", type=Path, default=ROOT / "examples" / "greenhouse")
    p.add_argument("--importtime", action="store_true", help="print the imports even if ok")
    p.add_argument("--top", type=int, default=15, help="imports listed (15)")
    p.add_argument("--dir", default=None, help="where the data directories go ($TMPDIR)")
    p.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = p.parse_args()

    work = make_workdir(args.dir)
    outpost = outpost_command()
    app = os.path.relpath(args.app.resolve(), ROOT)
    baseline_cmd = [sys.executable, "-c", BASELINE_SCRIPT]
    print(f"bench/footprint.py  runs={args.runs} idle={args.idle}s  app={app}")
    print(f"python {sys.version.split()[0]}, {affinity_text()}; cwd {ROOT}")
    print(f"outpost:  {' '.join(outpost)} serve {app} --data-dir {work}/data-N --port 0")
    print(f'baseline: {sys.executable} -c "import asyncio, aiohttp ... /health ..."')
    samples: dict[str, list[Sample]] = {"new": [], "restart": [], "baseline": []}
    try:
        for i in range(1, args.runs + 1):
            data = work / f"data-{i}"
            serve = [*outpost, "serve", app, "--data-dir", str(data), "--port", "0"]
            ours = ("new", "restart")
            order = ["baseline", *ours] if i % 2 else [*ours, "baseline"]
            for side in order:
                if side == "baseline":
                    s = measure(baseline_cmd, "listening on", args.idle, work / "baseline.log")
                else:
                    s = measure(serve, "Outpost listening on", args.idle, work / "outpost.log")
                samples[side].append(s)
            print(
                f"run {i}: "
                + " | ".join(
                    f"{side} {samples[side][-1].health_s * 1e3:5.0f} ms "
                    f"RssAnon {samples[side][-1].rss_anon_mb:5.1f} MB"
                    for side in ("new", "restart", "baseline")
                ),
                flush=True,
            )

        def med(side: str, attr: str) -> float:
            return median(getattr(s, attr) for s in samples[side]) or 0.0

        start = max(med("new", "health_s"), med("restart", "health_s"))
        rss = max(med("new", "rss_anon_mb"), med("restart", "rss_anon_mb"))
        start_ok, rss_ok = start <= START_GOAL_S, rss <= RSS_GOAL_MB
        print()
        print(f"medians over {args.runs} starts each (idle {args.idle} s before memory):")
        print(
            f"  {'':36} {'start->/health':>14} {'(min-max)':>11} {'ready line':>10} "
            f"{'RssAnon':>8} {'VmRSS':>8} {'threads':>7}"
        )
        rows = (
            ("new", "outpost serve, new data dir"),
            ("restart", "outpost serve, existing data dir"),
            ("baseline", "bare python + aiohttp /health"),
        )
        for side, name in rows:
            times = [s.health_s * 1e3 for s in samples[side]]
            threads = statistics.median(s.threads for s in samples[side])
            spread = f"{min(times):.0f}-{max(times):.0f}"
            print(
                f"  {name:36} {med(side, 'health_s') * 1e3:11.0f} ms {spread:>11} "
                f"{med(side, 'ready_line_s') * 1e3:7.0f} ms {med(side, 'rss_anon_mb'):5.1f} MB "
                f"{med(side, 'vm_rss_mb'):5.1f} MB {threads:7.0f}"
            )
        base_start, base_rss = med("baseline", "health_s"), med("baseline", "rss_anon_mb")
        print(
            f"  outpost - baseline: start +{(start - base_start) * 1e3:.0f} ms, "
            f"RssAnon +{rss - base_rss:.1f} MB"
        )
        print(
            f"  goals: start <= {START_GOAL_S} s: {verdict(start_ok)} ({start:.2f} s); "
            f"RssAnon <= {RSS_GOAL_MB:.0f} MB: {verdict(rss_ok)} ({rss:.1f} MB)"
        )

        if args.importtime or not (start_ok and rss_ok):
            cmd = [sys.executable, "-X", "importtime", *outpost[-1:], "serve", app]
            if outpost[0] == sys.executable:  # -m gateway.cli
                cmd = [sys.executable, "-X", "importtime", *outpost[1:], "serve", app]
            cmd += ["--data-dir", str(work / "data-1"), "--port", "0"]
            rows_it = import_times(cmd, work / "importtime.log")
            total_self = sum(r[0] for r in rows_it)
            print()
            print(f"imports at startup: {' '.join(cmd)}")
            print(
                f"  {len(rows_it)} modules, {total_self / 1e3:.0f} ms importing in total "
                f"(self times summed; -X importtime itself adds overhead)"
            )
            print(f"  top {args.top} by cumulative time:")
            print(f"  {'cumulative':>10} {'self':>8}  module")
            for self_us, cum_us, name in sorted(rows_it, key=lambda r: -r[1])[: args.top]:
                print(f"  {cum_us / 1e3:8.1f}ms {self_us / 1e3:6.1f}ms  {name}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"SUMMARY footprint [{app}]: outpost serve start->/health {start:.2f} s "
        f"(goal <= {START_GOAL_S} s: {verdict(start_ok)}), idle RssAnon {rss:.1f} MB "
        f"(goal <= {RSS_GOAL_MB:.0f} MB: {verdict(rss_ok)}); bare aiohttp baseline "
        f"{base_start:.2f} s, {base_rss:.1f} MB"
    )
    if args.check and not (start_ok and rss_ok):
        sys.exit(1)


if __name__ == "__main__":
    main()
