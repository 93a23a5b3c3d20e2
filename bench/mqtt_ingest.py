"""MQTT ingest: readings per second made durable, Outpost vs a bare paho + sqlite3 bridge.

``--devices`` simulated devices (default 100, ``firmware_clients.simulator``) publish
QoS 1 CBOR greenhouse readings with (boot, seq) as fast as their acks free room (a window
of ``--window`` uncovered readings each), through a Mosquitto on the managed broker's
generated files. A reading counts once an ``outpost/ack/{device}`` message covers it:
the figure is readings covered per second, from the first publish to the last ack.

- **Outpost**: ``outpost serve`` with its managed broker, on the bench's own app:
  ``readings:ingest`` validates its arguments and inserts the same row as the baseline
  (seq and boot from ``ctx.mqtt``) into a table indexed by device; plus the bridge,
  dedupe marks, group commit, retained acks. ``--greenhouse`` uses examples/greenhouse
  instead (an alert lookup per reading, and the table replicates: a change-log row each).
- **Baseline**: the same broker files run by this script, and a bare subscriber process
  (``--role baseline``): paho, MQTT 5 persistent session, Receive Maximum 512, manual
  ack after COMMIT; it decodes each CBOR payload and writes (device, boot, seq, celsius,
  humidity) rows with one ``executemany`` per batch into an indexed SQLite table (WAL,
  ``synchronous=FULL``, as Outpost's store), acknowledges the batch in order and
  publishes each device's newest seq on its ack topic. No dedupe, no validation.

Each round runs both, in alternating order; medians over rounds. Printed beside the rate:
the process's RssAnon at the end and ``write_bytes`` per reading (``/proc/PID/io``: what
went towards the storage device, SD-card wear), the broker's own counted apart.

    .venv/bin/python bench/mqtt_ingest.py
    .venv/bin/python bench/mqtt_ingest.py --devices 20 --readings 100 --rounds 1   # quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2
from _common import (
    fmt,
    free_port,
    make_workdir,
    median,
    outpost_command,
    proc_status_kb,
    stop_process,
    write_app,
    write_bytes,
)
from paho.mqtt.client import Client, MQTTMessage, MQTTv5
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_clients.simulator.fleet import Fleet  # noqa: E402
from gateway.mqtt.broker_files import BRIDGE_USER, CONFIG_NAME, BrokerSpec, write_broker_files  # noqa: E402
from gateway.mqtt.broker_pid import broker_directory, read_pid  # noqa: E402
from gateway.mqtt.passwords import generate_password, hash_password  # noqa: E402
from gateway.mqtt.supervisor import current_user, find_mosquitto  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GREENHOUSE = REPO / "examples" / "greenhouse"
TOPIC = "greenhouse/{device}/reading"

# The bench's own app: the same rows as the baseline's (an indexed table, seq and boot
# from ctx.mqtt), validated by the mutation's argument validators.
SCHEMA = """
from gateway import define_schema, define_table, v

schema = define_schema({
    "readings": define_table({
        "device": v.string(),
        "celsius": v.float64(),
        "humidity": v.optional(v.float64()),
        "seq": v.optional(v.int64()),
        "boot": v.optional(v.int64()),
    }).index("by_device", ["device"]),
})
"""
READINGS = """
from gateway import Int64, mutation, v

@mutation(args={"device": v.string(), "celsius": v.float64(), "humidity": v.optional(v.float64())})
async def ingest(ctx, args):
    reading = dict(args)
    if ctx.mqtt.seq is not None:
        reading["seq"], reading["boot"] = Int64(ctx.mqtt.seq), Int64(ctx.mqtt.boot)
    await ctx.db.insert("readings", reading)
"""
ROUTES = """
from gateway import mqtt_router

mqtt = mqtt_router()
mqtt.ingest("greenhouse/{device}/reading", "readings:ingest", payload="cbor")
"""

GOAL = 0.5
BATCH = 256
READY_S = 60.0
COVER_S = 600.0


@dataclass
class Run:
    rate: float  # readings covered per second
    rss_kb: int | None
    written_per_msg: float | None
    broker_written_per_msg: float | None


def per_msg(before: int | None, after: int | None, total: int) -> float | None:
    return None if before is None or after is None else (after - before) / total


def drive(fleet: Fleet, total: int) -> float:
    """Start the fleet, wait until every reading is covered; the seconds it took."""
    started = time.monotonic()
    fleet.start()
    deadline = started + COVER_S
    while fleet.totals()["covered"] < total:
        if time.monotonic() > deadline:
            sys.exit(f"not every reading covered after {COVER_S:.0f} s: {fleet.totals()}")
        time.sleep(0.005)
    elapsed = time.monotonic() - started
    return elapsed


def make_fleet(args: argparse.Namespace, passwords: dict[str, str], port: int, seed: int) -> Fleet:
    return Fleet(
        list(passwords.items()),
        port=port,
        topic=TOPIC,
        config_topic=None,
        rate_hz=math.inf,
        window=args.window,
        max_readings=args.readings,
        seed=seed,
    )


def write_passwords(data: Path, passwords: dict[str, str], bridge: str) -> None:
    spec = broker_spec(data, passwords, bridge, 1)
    write_broker_files(spec)


def broker_spec(data: Path, passwords: dict[str, str], bridge: str, port: int) -> BrokerSpec:
    users = {name: hash_password(pw) for name, pw in passwords.items()}
    users[BRIDGE_USER] = hash_password(bridge)
    return BrokerSpec(
        host="127.0.0.1",
        port=port,
        data_dir=data,
        bridge_user=BRIDGE_USER,
        users=users,
        ingest_patterns=[TOPIC],
        publish_patterns=["greenhouse/{device}/config"],
        run_as_user=current_user(),
    )


def bench_app(work: Path) -> Path:
    return write_app(work, {"schema.py": SCHEMA, "readings.py": READINGS, "mqtt.py": ROUTES})


def run_outpost(args: argparse.Namespace, work: Path, passwords: dict[str, str], seed: int) -> Run:
    data = work / f"outpost-{seed}"
    write_passwords(data, passwords, generate_password())  # the devices' entries
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env |= {"OUTPOST_MQTT_PORT": str(port), "OUTPOST_LOG_LEVEL": "warning"}
    app = GREENHOUSE if args.greenhouse else bench_app(work)
    cmd = [*outpost_command(), "serve", str(app), "--data-dir", str(data), "--port", "0"]
    log = (work / "outpost.log").open("a")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    assert proc.stdout is not None
    if not proc.stdout.readline().startswith("Outpost listening"):
        sys.exit(f"outpost serve did not start (log: {work / 'outpost.log'})")
    broker = read_pid(broker_directory(data))
    before, broker_before = write_bytes(proc.pid), write_bytes(broker)
    total = args.devices * args.readings
    elapsed = drive(fleet := make_fleet(args, passwords, port, seed), total)
    after, broker_after = write_bytes(proc.pid), write_bytes(broker)
    rss = proc_status_kb(proc.pid)
    fleet.stop()
    stop_process(proc)
    log.close()
    return Run(
        total / elapsed,
        rss,
        per_msg(before, after, total),
        per_msg(broker_before, broker_after, total),
    )


def run_baseline(args: argparse.Namespace, work: Path, passwords: dict[str, str], seed: int) -> Run:
    data = work / f"baseline-{seed}"
    bridge = generate_password()
    port = free_port()
    spec = broker_spec(data, passwords, bridge, port)
    write_broker_files(spec)
    broker = subprocess.Popen(
        [find_mosquitto(), "-c", str(spec.directory / CONFIG_NAME)],
        stdout=subprocess.DEVNULL,
        stderr=(work / "mosquitto.log").open("a"),
    )
    cmd = [
        sys.executable,
        __file__,
        "--role",
        "baseline",
        "--port",
        str(port),
        "--db",
        str(data / "baseline.sqlite3"),
    ]
    sub = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "BRIDGE_PASSWORD": bridge}
    )
    assert sub.stdout is not None
    if sub.stdout.readline().strip() != "subscribed":
        sys.exit("the baseline subscriber did not start")
    before, broker_before = write_bytes(sub.pid), write_bytes(broker.pid)
    total = args.devices * args.readings
    elapsed = drive(fleet := make_fleet(args, passwords, port, seed), total)
    after, broker_after = write_bytes(sub.pid), write_bytes(broker.pid)
    rss = proc_status_kb(sub.pid)
    fleet.stop()
    stop_process(sub)
    broker.send_signal(signal.SIGTERM)
    broker.wait(30)
    return Run(
        total / elapsed,
        rss,
        per_msg(before, after, total),
        per_msg(broker_before, broker_after, total),
    )


# --- the baseline subscriber (its own process) ----------------------------------------------


def baseline_main(args: argparse.Namespace) -> None:
    conn = sqlite3.connect(args.db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS readings (id INTEGER PRIMARY KEY, device TEXT, boot INTEGER, "
        "seq INTEGER, celsius REAL, humidity REAL)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS by_device ON readings (device)")
    inbox: queue.Queue[MQTTMessage] = queue.Queue()
    client = Client(
        CallbackAPIVersion.VERSION2, client_id="baseline", protocol=MQTTv5, manual_ack=True
    )
    client.username_pw_set(BRIDGE_USER, os.environ["BRIDGE_PASSWORD"])
    subscribed = queue.Queue[bool]()

    def on_connect(c: Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        c.subscribe([(TOPIC.replace("{device}", "+"), SubscribeOptions(qos=1, retainHandling=2))])

    client.on_connect = on_connect
    client.on_subscribe = lambda *_: subscribed.put(True)
    client.on_message = lambda _c, _u, m: inbox.put(m)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0xFFFFFFFF
    props.ReceiveMaximum = 512
    client.connect("127.0.0.1", args.port, properties=props, clean_start=False)
    client.loop_start()
    subscribed.get(timeout=30)
    print("subscribed", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        batch = [inbox.get()]
        while len(batch) < BATCH:
            try:
                batch.append(inbox.get_nowait())
            except queue.Empty:
                break
        rows, acks = [], {}
        for m in batch:
            body = cbor2.loads(m.payload)
            device = m.topic.split("/")[1]
            rows.append((device, body["boot"], body["seq"], body["celsius"], body.get("humidity")))
            acks[device] = (body["boot"], body["seq"])
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO readings (device, boot, seq, celsius, humidity) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
        for m in batch:
            client.ack(m.mid, 1)
        for device, (boot, seq) in acks.items():
            payload = json.dumps({"boot": boot, "seq": seq})
            client.publish(f"outpost/ack/{device}", payload, qos=1, retain=True)


# --- the driver -------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--readings", type=int, default=200, help="per device per run")
    parser.add_argument("--window", type=int, default=50, help="uncovered readings per device")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", help="where the stores go (default: a temp dir)")
    parser.add_argument(
        "--greenhouse",
        action="store_true",
        help="ingest with examples/greenhouse (an alert lookup per reading, replicated) "
        "instead of the bench's plain app",
    )
    parser.add_argument(
        "--role", choices=["driver", "baseline"], default="driver", help=argparse.SUPPRESS
    )
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "baseline":
        baseline_main(args)
        return
    work = make_workdir(args.dir)
    passwords = {f"bench-{i:03d}": generate_password() for i in range(args.devices)}
    total = args.devices * args.readings
    print(f"{args.devices} devices x {args.readings} readings = {total} per run")
    print(f"window {args.window} uncovered readings per device; work in {work}")
    print(f"{'round':>5} {'outpost/s':>10} {'baseline/s':>11} {'ratio':>6}")
    outposts, baselines, ratios = [], [], []
    for r in range(args.rounds):
        seed = 1000 + r
        order = ("outpost", "baseline") if r % 2 == 0 else ("baseline", "outpost")
        runs = {}
        for side in order:
            runner = run_outpost if side == "outpost" else run_baseline
            runs[side] = runner(args, work, passwords, seed)
        o, b = runs["outpost"], runs["baseline"]
        outposts.append(o)
        baselines.append(b)
        ratios.append(o.rate / b.rate)
        print(f"{r:>5} {o.rate:>10,.0f} {b.rate:>11,.0f} {o.rate / b.rate:>6.2f}", flush=True)
    for name, runs_of in (("outpost", outposts), ("baseline", baselines)):
        rss = median(x.rss_kb for x in runs_of)
        print(
            f"{name:>9}: median {fmt(median(x.rate for x in runs_of))}/s, RssAnon "
            f"{fmt(None if rss is None else rss / 1024, '.1f')} MB, written/reading "
            f"{fmt(median(x.written_per_msg for x in runs_of))} B (its broker "
            f"{fmt(median(x.broker_written_per_msg for x in runs_of))} B)"
        )
    ratio = median(ratios) or 0.0
    verdict = "ok" if ratio >= GOAL else "MISS"
    print(f"SUMMARY mqtt_ingest: outpost/baseline {ratio:.2f} (goal >= {GOAL}) {verdict}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
