"""MQTT end to end: device publish -> live query update on a WebSocket, p50/p99.

One device publishes QoS 1 JSON readings ``{"sent": <ms since the epoch>}`` at
``--rate`` per second (default 1,000) for ``--duration`` seconds. Both sides run in
this process: the device (paho, its own thread) and the subscriber, so one clock stamps
both ends.

- **Outpost**: ``outpost serve`` of a small app with its managed broker; the route
  ``pings/{device}/ping`` runs ``pings:ingest``; a WebSocket client speaking Convex's sync
  protocol subscribes to ``pings:latest`` (the newest ping). Latency: each update's
  ``sent`` -> its Transition's arrival. At 1,000 msgs/s group commit merges readings, so
  a Transition carries the newest one: updates are fewer than readings.
- **Baseline**: a Mosquitto on the same generated files, and a paho subscriber on the
  topic: each message's publish -> receipt (the broker's own round trip).

    .venv/bin/python bench/mqtt_latency.py
    .venv/bin/python bench/mqtt_latency.py --rate 200 --duration 3 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import aiohttp
from _common import (
    free_port,
    make_workdir,
    median,
    outpost_command,
    percentile,
    stop_process,
    write_app,
)
from paho.mqtt.client import Client, MQTTMessage, MQTTv5
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.mqtt.broker_files import (  # noqa: E402
    BRIDGE_USER,
    CONFIG_NAME,
    BrokerSpec,
    write_broker_files,
)
from gateway.mqtt.passwords import generate_password, hash_password  # noqa: E402
from gateway.mqtt.supervisor import current_user, find_mosquitto  # noqa: E402

DEVICE = "latency-1"
TOPIC = f"pings/{DEVICE}/ping"
SYNC_PATH = "/api/1.48.0/sync"

PINGS = """
from gateway import mutation, query, v

@mutation(args={"device": v.string(), "sent": v.float64()})
async def ingest(ctx, args):
    await ctx.db.insert("pings", args)

@query(args={})
async def latest(ctx, args):
    return await ctx.db.query("pings").order("desc").first()
"""
ROUTES = """
from gateway import mqtt_router

mqtt = mqtt_router()
mqtt.ingest("pings/{device}/ping", "pings:ingest", payload="json")
"""


def spec(data: Path, device_pw: str, bridge_pw: str, port: int) -> BrokerSpec:
    return BrokerSpec(
        host="127.0.0.1",
        port=port,
        data_dir=data,
        bridge_user=BRIDGE_USER,
        users={DEVICE: hash_password(device_pw), BRIDGE_USER: hash_password(bridge_pw)},
        ingest_patterns=["pings/{device}/ping"],
        run_as_user=current_user(),
    )


def connected(user: str, password: str, port: int, name: str) -> Client:
    client = Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=MQTTv5)
    client.username_pw_set(user, password)
    ready = threading.Event()
    client.on_connect = lambda *_: ready.set()
    deadline = time.monotonic() + 30
    while True:  # the broker may still be binding its port
        try:
            client.connect("127.0.0.1", port)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    client.loop_start()
    if not ready.wait(30):
        sys.exit(f"{name}: no CONNACK from the broker on port {port}")
    return client


def publish_paced(client: Client, rate: float, duration: float) -> int:
    """Publish ``{"sent": ms}`` at ``rate`` per second for ``duration`` s; how many."""
    interval = 1.0 / rate
    start = time.monotonic()
    count = 0
    while (now := time.monotonic()) < start + duration:
        due = start + count * interval
        if now < due:
            time.sleep(due - now)
        body = json.dumps({"sent": time.time_ns() / 1e6})
        client.publish(TOPIC, body, qos=1)
        count += 1
    return count


def outpost_round(args: argparse.Namespace, work: Path) -> list[float]:
    app = write_app(work, {"pings.py": PINGS, "mqtt.py": ROUTES})
    data = work / f"outpost-data-{uuid.uuid4().hex[:6]}"
    device_pw = generate_password()
    write_broker_files(spec(data, device_pw, generate_password(), 1))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env |= {"OUTPOST_MQTT_PORT": str(port), "OUTPOST_LOG_LEVEL": "warning"}
    cmd = [*outpost_command(), "serve", str(app), "--data-dir", str(data), "--port", "0"]
    log = (work / "outpost.log").open("a")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "http://" not in line:
        sys.exit(f"outpost serve did not start (log: {work / 'outpost.log'})")
    url = line[line.index("http://") :].split()[0].replace("http://", "ws://")
    try:
        return asyncio.run(measure(url + SYNC_PATH, port, device_pw, args))
    finally:
        stop_process(proc)
        log.close()


async def measure(url: str, port: int, device_pw: str, args: argparse.Namespace) -> list[float]:
    """Subscribe to ``pings:latest``, publish paced readings; each update's latency."""
    connect = {
        "type": "Connect",
        "sessionId": str(uuid.uuid4()),
        "connectionCount": 0,
        "lastCloseReason": "InitialConnect",
        "clientTs": 0,
    }
    add = {"type": "Add", "queryId": 0, "udfPath": "pings:latest", "args": [{}]}
    modify = {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [add]}
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(url, max_msg_size=0)
        await ws.send_str(json.dumps(connect))
        await ws.send_str(json.dumps(modify))
        device = await asyncio.to_thread(connected, DEVICE, device_pw, port, "latency-device")
        publisher = asyncio.create_task(
            asyncio.to_thread(publish_paced, device, args.rate, args.duration)
        )
        while not publisher.done():
            try:
                msg = await ws.receive(timeout=0.5)
            except TimeoutError:
                continue
            arrived = time.time_ns() / 1e6
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            for mod in json.loads(msg.data).get("modifications", ()):
                value = mod.get("value")
                if mod.get("type") == "QueryUpdated" and isinstance(value, dict):
                    latencies.append(arrived - value["sent"])
        await publisher
        device.loop_stop()
        device.disconnect()
        await ws.close()
    return latencies[1:]  # the first is the subscription's initial value


def baseline_round(args: argparse.Namespace, work: Path) -> list[float]:
    data = work / f"baseline-data-{uuid.uuid4().hex[:6]}"
    device_pw, bridge_pw, port = generate_password(), generate_password(), free_port()
    broker_spec = spec(data, device_pw, bridge_pw, port)
    write_broker_files(broker_spec)
    broker = subprocess.Popen(
        [find_mosquitto(), "-c", str(broker_spec.directory / CONFIG_NAME)],
        stdout=subprocess.DEVNULL,
        stderr=(work / "mosquitto.log").open("a"),
    )
    latencies: list[float] = []
    lock = threading.Lock()

    def on_message(_c: Client, _u: object, message: MQTTMessage) -> None:
        arrived = time.time_ns() / 1e6
        with lock:
            latencies.append(arrived - json.loads(message.payload)["sent"])

    try:
        sub = connected(BRIDGE_USER, bridge_pw, port, "latency-sub")
        sub.on_message = on_message
        subscribed = threading.Event()
        sub.on_subscribe = lambda *_: subscribed.set()
        sub.subscribe(TOPIC, qos=1)
        subscribed.wait(30)
        device = connected(DEVICE, device_pw, port, "latency-device")
        sent = publish_paced(device, args.rate, args.duration)
        deadline = time.monotonic() + 10
        while len(latencies) < sent and time.monotonic() < deadline:
            time.sleep(0.01)  # the last messages in flight
        for client in (device, sub):
            client.loop_stop()
            client.disconnect()
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(30)
    return latencies


def describe(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: no samples"
    return (
        f"{name}: {len(values)} samples, p50 {percentile(values, 0.50):.2f} ms, "
        f"p99 {percentile(values, 0.99):.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="readings per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", help="work directory base (default: a temp dir)")
    args = parser.parse_args()
    work = make_workdir(args.dir)
    print(f"{args.rate:.0f} readings/s for {args.duration:.0f} s per run; work in {work}")
    p50s: dict[str, list[float]] = {"outpost": [], "baseline": []}
    p99s: dict[str, list[float]] = {"outpost": [], "baseline": []}
    for r in range(args.rounds):
        for side in ("outpost", "baseline") if r % 2 == 0 else ("baseline", "outpost"):
            if side == "outpost":
                values = outpost_round(args, work)
            else:
                values = baseline_round(args, work)
            print(f"round {r} " + describe(side, values), flush=True)
            if values:
                p50s[side].append(percentile(values, 0.50))
                p99s[side].append(percentile(values, 0.99))
    for side in ("outpost", "baseline"):
        print(
            f"{side:>9}: median p50 {median(p50s[side]) or 0:.2f} ms, "
            f"median p99 {median(p99s[side]) or 0:.2f} ms"
        )
    o50, b50 = median(p50s["outpost"]) or 0.0, median(p50s["baseline"]) or 0.0
    o99, b99 = median(p99s["outpost"]) or 0.0, median(p99s["baseline"]) or 0.0
    print(
        f"SUMMARY mqtt_latency at {args.rate:.0f}/s: device -> WebSocket p50 {o50:.1f} ms, "
        f"p99 {o99:.1f} ms; mosquitto pub -> sub p50 {b50:.2f} ms, p99 {b99:.2f} ms"
    )


if __name__ == "__main__":
    main()
