"""The demo: ``outpost dev`` on the greenhouse app, driven over the HTTP API.

Run with ``scripts/demo`` (or ``python -m examples.greenhouse.demo``). It starts the
gateway, registers devices, sends readings, reads them back, shows an action, a
ConvexError and a validation error, prints the URL, then keeps serving until Ctrl-C
(``--once`` stops right after the calls).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

APP_DIR = Path(__file__).resolve().parent
OUTPOST = Path(sys.executable).parent / "outpost"


def call(url: str, kind: str, path: str, args: dict[str, Any]) -> dict[str, Any]:
    """One call through the Convex HTTP API (what ConvexHttpClient sends)."""
    body = json.dumps({"path": path, "args": args, "format": "json"}).encode()
    request = urllib.request.Request(
        f"{url}/api/{kind}", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


def show(title: str, value: object) -> None:
    print(f"\n== {title}\n{value}", flush=True)


def drive(url: str) -> None:
    for name, zone, limit in [
        ("gh-1", "north", 30.0),
        ("gh-2", "north", 28.0),
        ("gh-3", "south", 35.0),
    ]:
        call(
            url, "mutation", "devices:register", {"name": name, "zone": zone, "max_celsius": limit}
        )
    rng = random.Random(7)
    started = time.monotonic()
    alerts = []
    for i in range(60):
        reading = {"device": f"gh-{1 + i % 3}", "celsius": round(rng.uniform(18, 34), 1)}
        alerts += call(url, "mutation", "readings:ingest", reading).get("logLines", [])
    show(
        "60 sensor readings over HTTP", f"{time.monotonic() - started:.2f} s, alerts: {alerts[:3]}"
    )
    latest = call(url, "query", "readings:latest", {"device": "gh-1", "limit": 3})["value"]
    show("latest 3 from gh-1", [r["celsius"] for r in latest])
    show("stats for gh-2", call(url, "query", "readings:stats", {"device": "gh-2"})["value"])
    report = call(url, "action", "devices:zone_report", {"zone": "north"})
    show(
        "action devices:zone_report (north)", f"{report['value']}\nlog lines: {report['logLines']}"
    )
    failed = call(url, "mutation", "devices:remove", {"name": "gh-9"})
    show(
        "a ConvexError carries its data",
        f"{failed['errorMessage']}\nerrorData: {failed.get('errorData')}",
    )
    bad = call(url, "mutation", "readings:ingest", {"device": "gh-1", "celsius": "hot"})
    show("bad arguments get Convex's message", bad["errorMessage"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=3210)
    parser.add_argument("--data-dir", help="where the store lives (default: a temp dir)")
    parser.add_argument("--once", action="store_true", help="stop after the calls")
    args = parser.parse_args()
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="outpost-demo-")
    command = [str(OUTPOST), "dev", str(APP_DIR), "--port", str(args.port), "--data-dir", data_dir]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("Outpost listening on "):
            print("outpost dev did not start; see the lines above", file=sys.stderr)
            return 1
        url = line.split(" on ", 1)[1].strip()
        print(f"outpost dev is serving examples/greenhouse at {url} (data in {data_dir})")
        drive(url)
        print(
            f"\nThe gateway is at {url} — try: .venv/bin/outpost run --url {url} "
            'readings:latest \'{"device": "gh-1"}\''
        )
        if not args.once:
            print(
                "Edit examples/greenhouse/convex/*.py to see it reload. Ctrl-C stops.", flush=True
            )
            signal.signal(signal.SIGINT, lambda *_: server.terminate())
            server.wait()
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
