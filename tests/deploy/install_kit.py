"""What the install.sh tests share: the checkout's copy in a root, and a device.

``DEVICE`` runs in the root with the installed virtualenv's Python (paho comes with
Outpost): it waits for the gateway's API, checks that Mosquitto refuses a wrong password
and takes the device's, then publishes readings (a new ``seq`` each, since the bridge
subscribes only once it is up) until one is in the store.
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = "/opt/src"  # the checkout's copy inside the root
INSTALL = f"sh {SOURCE}/deploy/install.sh"
DEVICE_FILE = "/root/device.json"  # what `outpost device add --json` printed
DEVICE = (
    f"""
import json, sys, threading, time, urllib.request
import paho.mqtt.client as mqtt

PASSWORD = json.load(open("{DEVICE_FILE}"))["password"]
DEADLINE = time.monotonic() + 60
"""
    + """

def latest():
    body = {"path": "readings:latest", "args": {"device": "sensor-1"}, "format": "json"}
    request = urllib.request.Request(
        "http://127.0.0.1:3210/api/query", json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.load(answer)["value"]
    except OSError:
        return None


def connect(password):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, "sensor-1", protocol=mqtt.MQTTv5)
    client.username_pw_set("sensor-1", password)
    answered, codes = threading.Event(), []
    client.on_connect = lambda c, u, f, code, p: (codes.append(code), answered.set())
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    if not answered.wait(10):
        sys.exit("no CONNACK")
    return client, codes[0]


def wait(what, ready):
    while not ready():
        if time.monotonic() > DEADLINE:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.2)


wait("the gateway's API", lambda: latest() is not None)
refused, code = connect("not-the-password")
refused.loop_stop()
assert code.is_failure, code
accepted = []  # Mosquitto takes a new device once it has reloaded its password file
wait("the device's login", lambda: accepted.append(connect(PASSWORD)) or not accepted[-1][1].is_failure)
client = accepted[-1][0]
seq = 0


def send_and_look():
    global seq
    seq += 1
    payload = json.dumps({"celsius": 21.5, "seq": seq, "boot": 1})
    client.publish("greenhouse/sensor-1/reading", payload, qos=1).wait_for_publish(10)
    return latest()


wait("the reading in the store", send_and_look)  # the bridge subscribes once it is up
print("reading stored:", latest()[0]["celsius"])
"""
)


def copy_checkout(target: Path) -> None:
    """What install.sh reads from a checkout: the package, its units and itself."""
    ignore = shutil.ignore_patterns("__pycache__", "node_modules")
    target.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, target / name)
    for name in ("gateway", "deploy", "systemd", "examples/greenhouse"):
        shutil.copytree(REPO / name, target / name, ignore=ignore)
    shutil.rmtree(target / "deploy" / "convex")  # the Convex deployment: not for install.sh
