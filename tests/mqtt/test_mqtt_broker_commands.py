"""The managed broker through the commands: ``outpost serve`` starts and stops it,
``outpost device add/remove`` reload it, ``outpost mqtt config`` files run under a
stock-like Mosquitto, an ``outpost dev`` reload rewrites the ACL. (Refusals that need no
broker: ``tests/cli/test_cli_mqtt.py``.)"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mosquitto_kit import connack_until, current_user, free_port, mosquitto_path, session

from gateway.cli import main
from gateway.mqtt.broker_files import BRIDGE_USER
from gateway.mqtt.broker_pid import broker_directory, read_pid
from gateway.mqtt.endpoint import BrokerEndpoint

OUTPOST = Path(sys.executable).parent / "outpost"
READY_PREFIX = "Outpost listening on http://"
DEADLINE_S = 30.0

READINGS = """
from gateway import mutation, query, v

@mutation(args={"device": v.string(), "t": v.float64()})
async def ingest(ctx, args):
    return await ctx.db.insert("readings", args)

@query(args={})
async def configs(ctx, args):
    return []
"""

MQTT = """
from gateway import mqtt_router

mqtt = mqtt_router()
mqtt.ingest("sensors/{device}/t", "readings:ingest")
mqtt.publish("devices/{device}/config", query="readings:configs", each=True)
"""


def _app(tmp_path: Path, *, routes: bool = True) -> Path:
    app = tmp_path / "app"
    (app / "convex").mkdir(parents=True)
    (app / "convex" / "readings.py").write_text(READINGS)
    if routes:
        (app / "convex" / "mqtt.py").write_text(MQTT)
    return app


def _outpost(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OUTPOST, *map(str, args)], capture_output=True, text=True, timeout=60, env=env
    )


def _ready_line(proc: subprocess.Popen[str]) -> str:
    """The first stdout line, read on a thread so the wait has a deadline."""
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    assert stdout is not None
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=DEADLINE_S)
    except queue.Empty:
        pytest.fail(f"outpost serve printed no ready line in {DEADLINE_S} s")


def _end(proc: subprocess.Popen[str]) -> None:
    """Kill (if still running), reap, close its pipe."""
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _connects(port: int, username: str, password: str) -> bool:
    with session(port, username, password) as client:
        return not client.connack.is_failure


def _until(condition: object, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# --- outpost serve ------------------------------------------------------------------------


def test_serve_runs_a_broker_devices_reach_and_device_add_reloads_it(tmp_path: Path) -> None:
    mosquitto_path()
    app, data, port = _app(tmp_path), tmp_path / "data", free_port()
    env = {**os.environ, "OUTPOST_MQTT_PORT": str(port)}
    flags = [app, "--data-dir", data]
    d1 = json.loads(_outpost("device", "add", "d1", "--json", *flags, env=env).stdout)
    err = tmp_path / "serve.err"
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            [OUTPOST, "serve", app, "--port", "0", "--data-dir", data],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert _ready_line(proc).startswith(READY_PREFIX), err.read_text()
        pid = read_pid(broker_directory(data))
        assert pid is not None and _alive(pid)
        assert _connects(port, "d1", d1["password"])

        added = _outpost("device", "add", "d2", "--json", *flags, env=env)
        assert "the running broker was reloaded" in added.stderr
        connack_until(port, "d2", json.loads(added.stdout)["password"], refused=False)
        removed = _outpost("device", "remove", "d1", *flags, env=env)
        assert "the running broker was reloaded" in removed.stderr
        connack_until(port, "d1", d1["password"], refused=True)
        assert read_pid(broker_directory(data)) == pid and _alive(pid)  # reloaded, not restarted

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE_S) == 0, err.read_text()
        assert not _alive(pid) and not _accepts(port)
        assert read_pid(broker_directory(data)) is None
    finally:
        _end(proc)
    gone = _outpost("device", "add", "d3", *flags, env=env)
    assert "no broker is running; it sees the change when it starts" in gone.stderr


def test_serve_of_an_app_without_mqtt_py_starts_no_broker(tmp_path: Path) -> None:
    app, data = _app(tmp_path, routes=False), tmp_path / "data"
    # No mosquitto anywhere: an app without routes must not need it.
    env = {**os.environ, "PATH": str(tmp_path), "OUTPOST_MQTT_PORT": str(free_port())}
    with (tmp_path / "serve.err").open("w") as stderr:
        proc = subprocess.Popen(
            [OUTPOST, "serve", app, "--port", "0", "--data-dir", data],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert _ready_line(proc).startswith(READY_PREFIX)
        assert not broker_directory(data).exists()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE_S) == 0
    finally:
        _end(proc)


# --- outpost mqtt config ------------------------------------------------------------------


def test_mqtt_config_files_run_under_a_stock_like_mosquitto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app, data, files = _app(tmp_path), tmp_path / "data", tmp_path / "files"
    port = free_port()
    monkeypatch.setenv("OUTPOST_MQTT_PORT", str(port))
    flags = [str(app), "--data-dir", str(data)]
    assert main(["device", "add", "d1", "--json", *flags]) == 0
    d1 = json.loads(capsys.readouterr().out)["password"]
    assert main(["mqtt", "config", *flags, "--dir", str(files)]) == 0
    assert {p.name for p in files.iterdir()} == {"outpost.conf", "acl", "passwords", "bridge-url"}
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in files.iterdir())
    bridge_url = (files / "bridge-url").read_text().strip()
    # Debian's stock mosquitto.conf, its paths moved into the test's directory.
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "outpost.conf").write_text((files / "outpost.conf").read_text())
    stock = tmp_path / "mosquitto.conf"
    stock.write_text(
        f"pid_file {tmp_path}/mosquitto.pid\npersistence true\n"
        f"persistence_location {tmp_path}/\nlog_dest stderr\n"
        f"include_dir {tmp_path}/conf.d\nuser {current_user()}\n"
    )
    log = tmp_path / "mosquitto.log"
    with log.open("wb") as out:
        broker = subprocess.Popen([mosquitto_path(), "-c", str(stock)], stdout=out, stderr=out)
    try:
        _until(lambda: _accepts(port) or broker.poll() is not None, "the broker")
        assert broker.poll() is None, log.read_text()
        password = bridge_url.split(":")[2].split("@")[0]
        assert _connects(port, BRIDGE_USER, password)
        assert _connects(port, "d1", d1)
        assert not _connects(port, "d1", "wrong")
    finally:
        broker.terminate()
        broker.wait(DEADLINE_S)
    assert bridge_url == f"mqtt://{BRIDGE_USER}:{password}@127.0.0.1:{port}"
    # Run again (after a device change): the bridge keeps its password.
    assert main(["mqtt", "config", *flags, "--dir", str(files)]) == 0
    assert (files / "bridge-url").read_text().strip() == bridge_url


# --- outpost dev: a reload rewrites the ACL -----------------------------------------------


async def test_an_app_reload_rewrites_the_acl_of_the_same_broker(tmp_path: Path) -> None:
    from gateway.config import Settings
    from gateway.service import Service

    mosquitto_path()
    app = _app(tmp_path)
    settings = Settings(port=0, data_dir=str(tmp_path / "data"), mqtt_port=free_port())
    acl = broker_directory(tmp_path / "data") / "acl"
    async with Service(app, settings) as service:
        endpoint = service.mqtt_endpoint
        assert endpoint is not None and endpoint.port == settings.mqtt_port
        pid = read_pid(broker_directory(tmp_path / "data"))
        assert "pattern write sensors/%u/t\n" in acl.read_text()
        (app / "convex" / "mqtt.py").write_text(MQTT.replace("sensors/{device}/t", "s/{device}/h"))
        await service.gateway.reload_app()
        assert "pattern write s/%u/h\n" in acl.read_text()
        assert "sensors/%u/t" not in acl.read_text()
        assert read_pid(broker_directory(tmp_path / "data")) == pid
    assert pid is not None and not _alive(pid)
    # The broker step's listener is unregistered on stop (the gateway's own steps, auth and
    # crons, keep theirs: they go with the gateway).
    left = [getattr(fn, "__qualname__", "") for fn in service.gateway._reload_listeners]
    assert not [name for name in left if "Service" in name], left


async def test_off_and_external_start_no_broker(tmp_path: Path) -> None:
    from gateway.config import Settings
    from gateway.errors import StartError
    from gateway.service import Service

    app = _app(tmp_path)
    off = Settings(port=0, data_dir=str(tmp_path / "off"), mqtt_broker="off")
    async with Service(app, off) as service:
        assert service.mqtt_endpoint is None
    assert not broker_directory(tmp_path / "off").exists()

    url = "mqtts://gw:secret@broker.lan:8883"
    settings = Settings(
        port=0, data_dir=str(tmp_path / "ext"), mqtt_broker="external", mqtt_url=url
    )
    seen: list[object] = []

    async def after_the_broker_step(phase: str, name: str) -> None:
        # The step after "mqtt broker" (the bridge) would connect to broker.lan: stop there.
        if phase == "start" and seen == ["mqtt broker"]:
            seen.append(service.mqtt_endpoint)
            raise RuntimeError("enough")
        if phase == "start" and name == "mqtt broker":
            seen.append(name)

    service = Service(app, settings, step_hook=after_the_broker_step)
    with pytest.raises(StartError):
        await service.start()
    assert seen[1] == BrokerEndpoint("broker.lan", 8883, "gw", "secret", tls=True)
    assert not broker_directory(tmp_path / "ext").exists()
