"""The demo: the whole gateway loop on the greenhouse app.

Run with ``scripts/demo`` (or ``python -m examples.greenhouse.demo``). It:

1. makes sure Debian's ``mosquitto`` is there (installs it as root; otherwise says how),
2. registers three devices (``outpost device add``: MQTT credentials),
3. starts ``outpost dev`` on the greenhouse app: the HTTP API and the managed broker,
4. registers the devices' configs over the HTTP API (``devices:register``), which the
   gateway publishes to each device's ``greenhouse/<name>/config`` topic,
5. starts three simulated sensors (``firmware_clients/simulator``) publishing CBOR
   readings with (boot, seq) over MQTT, kept until the gateway's ack covers them,
6. subscribes to a live query over the Convex sync protocol and prints it as it changes,
7. changes one device's config over the HTTP API and shows the device receiving it over
   MQTT,
8. prints the URLs (the API, the broker, the dashboard), then keeps everything running
   until Ctrl-C (``--once``: stops).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from firmware_clients.simulator.credentials import provision
from firmware_clients.simulator.fleet import Fleet
from gateway.values import decode_json

APP_DIR = Path(__file__).resolve().parent
OUTPOST = Path(sys.executable).parent / "outpost"
DEVICES = [("gh-1", "north", 30.0), ("gh-2", "north", 28.0), ("gh-3", "south", 35.0)]
SYNC_PATH = "/api/1.48.0/sync"
WATCH_S = 6.0


def call(url: str, kind: str, path: str, args: dict[str, Any]) -> dict[str, Any]:
    """One call through the Convex HTTP API (what ConvexHttpClient sends)."""
    body = json.dumps({"path": path, "args": args, "format": "json"}).encode()
    request = urllib.request.Request(
        f"{url}/api/{kind}", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


def show(title: str, value: object = "") -> None:
    print(f"\n== {title}" + (f"\n{value}" if value != "" else ""), flush=True)


def ensure_mosquitto() -> bool:
    """True once Debian's mosquitto is installed (as root it is installed here)."""
    if shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists():
        return True
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(
            "The demo runs the managed MQTT broker, Debian's mosquitto, which is not "
            "installed:\n  sudo apt-get install mosquitto\nthen run scripts/demo again.",
            file=sys.stderr,
        )
        return False
    print("installing Debian's mosquitto (the managed MQTT broker)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (
        ["update", "-qq"],
        ["install", "-y", "-qq", "--no-install-recommends", "mosquitto"],
    ):
        subprocess.run(["apt-get", *step], check=True, env=env, stdout=subprocess.DEVNULL)
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def watch_latest(url: str, device: str, seconds: float) -> None:
    """Subscribe to ``readings:latest`` over the sync protocol; print each new value."""
    ws_url = url.replace("http://", "ws://") + SYNC_PATH
    connect = {
        "type": "Connect",
        "sessionId": str(uuid.uuid4()),
        "connectionCount": 0,
        "lastCloseReason": "InitialConnect",
        "clientTs": 0,
    }
    add = {
        "type": "Add",
        "queryId": 0,
        "udfPath": "readings:stats",
        "args": [{"device": device}],
    }
    modify = {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [add]}
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
        await ws.send_str(json.dumps(connect))
        await ws.send_str(json.dumps(modify))
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await ws.receive(timeout=left)
            except TimeoutError:
                break
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            for mod in json.loads(msg.data).get("modifications", ()):
                if mod.get("type") == "QueryUpdated":
                    stats = decode_json(mod["value"])
                    count = stats["count"]
                    mean = stats["mean"]
                    shown = "n/a" if mean is None else f"{mean:.2f} °C"
                    print(
                        f"  live readings:stats {device}: count {count}, mean {shown}", flush=True
                    )


def wait_for_config(fleet: Fleet, device: str, predicate: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        configs = fleet.configs(device)
        if configs and predicate(configs[-1]):
            return configs[-1]
        time.sleep(0.05)
    return None


def run(
    url: str, mqtt_port: int, credentials: list[dict[str, Any]], once: bool, data_dir: Path
) -> None:
    for name, zone, limit in DEVICES:
        call(
            url, "mutation", "devices:register", {"name": name, "zone": zone, "max_celsius": limit}
        )
    show("3 devices registered over the HTTP API; each gets its config over MQTT")
    fleet = Fleet(
        [(c["device"], c["password"]) for c in credentials],
        port=mqtt_port,
        rate_hz=2.0,
        seed=7,
    )
    with fleet:
        first = wait_for_config(fleet, "gh-2", lambda c: c is not None, 10)
        print(f"  gh-2 received on greenhouse/gh-2/config: {first}", flush=True)
        show(
            "3 simulated sensors publish CBOR readings over MQTT (2/s each); "
            "a live query over the sync protocol follows gh-1"
        )
        asyncio.run(watch_latest(url, "gh-1", WATCH_S))
        totals = fleet.totals()
        show(
            "durable and acknowledged",
            f"  readings made {totals['made']}, "
            f"covered by outpost/ack/<device> {totals['covered']}",
        )
        call(
            url,
            "mutation",
            "devices:register",
            {"name": "gh-2", "zone": "north", "max_celsius": 26.5},
        )
        show("gh-2's max_celsius changed to 26.5 over the HTTP API")
        changed = wait_for_config(fleet, "gh-2", lambda c: c and c.get("max_celsius") == 26.5, 10)
        print(f"  gh-2 received over MQTT: {changed}", flush=True)
        latest = call(url, "query", "readings:latest", {"device": "gh-3", "limit": 3})["value"]
        show(
            "latest 3 readings of gh-3 (seq and boot kept from ctx.mqtt)",
            "\n".join(f"  seq {r.get('seq')}: {r['celsius']} °C" for r in latest),
        )
        print(
            f"\nThe gateway: {url} (HTTP API and sync), MQTT broker on 127.0.0.1:{mqtt_port}.\n"
            f"The dashboard: {url}/dashboard/ (log in with the key in {data_dir}/admin_key, or\n"
            f"  open it logged in: {OUTPOST} dashboard {APP_DIR} --data-dir {data_dir})\n"
            f'Try: {OUTPOST} run --url {url} readings:stats \'{{"device": "gh-1"}}\'',
            flush=True,
        )
        if not once:
            print("Sensors keep publishing. Ctrl-C stops.", flush=True)
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=3210, help="HTTP port")
    parser.add_argument("--mqtt-port", type=int, default=0, help="MQTT port (default: a free one)")
    parser.add_argument("--data-dir", help="where the store lives (default: a temp dir)")
    parser.add_argument("--once", action="store_true", help="stop after the walk-through")
    args = parser.parse_args()
    if not ensure_mosquitto():
        return 2
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="outpost-demo-"))
    mqtt_port = args.mqtt_port or free_port()
    env = {**os.environ, "OUTPOST_MQTT_BROKER": "managed", "OUTPOST_MQTT_PORT": str(mqtt_port)}
    os.environ.update(env)  # for `outpost device add` too
    credentials = provision(
        [name for name, _, _ in DEVICES],
        APP_DIR,
        data_dir,
        data_dir / "demo-devices.json",
        outpost=[str(OUTPOST)],
    )
    command = [
        str(OUTPOST),
        "dev",
        str(APP_DIR),
        "--port",
        str(args.port),
        "--data-dir",
        str(data_dir),
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("Outpost listening on "):
            print("outpost dev did not start; see the lines above", file=sys.stderr)
            return 1
        url = line.split(" on ", 1)[1].strip()
        print(f"outpost dev is serving examples/greenhouse at {url} (data in {data_dir})")
        run(url, mqtt_port, list(credentials), args.once, data_dir)
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
