"""``mqtt_tls_port``: a device publishes over TLS to the managed Mosquitto, verifying it
with the local CA, and the reading lands in the store; without the CA it cannot connect."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import queue
import socket
import ssl
import subprocess
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from debian import ensure_programs
from paho.mqtt.client import Client, MQTTv5
from paho.mqtt.enums import CallbackAPIVersion

from gateway import Settings
from gateway.cli import main
from gateway.mqtt.broker_files import CONFIG_NAME
from gateway.mqtt.passwords import generate_password, hash_password, write_password_file
from gateway.private_files import DIR_MODE
from gateway.service import Service

DEADLINE_S = 15.0

READINGS = """
from gateway import mutation, query, v

@mutation(args={"device": v.string(), "celsius": v.float64()})
async def ingest(ctx, args):
    await ctx.db.insert("readings", dict(args))

@query(args={})
async def everything(ctx, args):
    return await ctx.db.query("readings").collect()
"""

ROUTES = """
from gateway import mqtt_router

mqtt = mqtt_router()
mqtt.ingest("sensors/{device}/temperature", "readings:ingest", payload="auto")
"""


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _app(root: Path) -> Path:
    convex = root / "convex"
    convex.mkdir(parents=True)
    (convex / "readings.py").write_text(textwrap.dedent(READINGS))
    (convex / "mqtt.py").write_text(textwrap.dedent(ROUTES))
    return root


def _register(data: Path, device: str, password: str) -> None:
    """What ``outpost device add`` leaves: the device's hash in the registry."""
    directory = data / "mosquitto"
    data.mkdir(mode=DIR_MODE)
    directory.mkdir(mode=DIR_MODE)
    write_password_file(directory / "passwords", {device: hash_password(password)})


def _handshake_without_the_ca(port: int) -> None:
    """A TLS client trusting the system's CAs only (paho would leave its socket open)."""
    context = ssl.create_default_context()
    with socket.create_connection(("localhost", port)) as raw:
        context.wrap_socket(raw, server_hostname="localhost").close()


def _publish_over_tls(port: int, ca: Path, device: str, password: str) -> None:
    """Connect to ``localhost:port`` over TLS trusting ``ca``, publish one reading at
    QoS 1, wait for its PUBACK, disconnect."""
    client = Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"tls-{uuid.uuid4().hex[:8]}",
        protocol=MQTTv5,
    )
    client.tls_set(ca_certs=str(ca))
    client.username_pw_set(device, password)
    connected: queue.Queue[Any] = queue.Queue()
    client.on_connect = lambda _c, _u, _f, code, _p: connected.put(code)
    client.connect("localhost", port)
    client.loop_start()
    try:
        code = connected.get(timeout=DEADLINE_S)
        assert not code.is_failure, code
        body = json.dumps({"celsius": 21.5}).encode()
        info = client.publish(f"sensors/{device}/temperature", body, qos=1)
        info.wait_for_publish(DEADLINE_S)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


async def test_a_device_publishes_over_tls_and_the_reading_is_stored(tmp_path: Path) -> None:
    ensure_programs(["mosquitto"], ["mosquitto"], "the MQTT over TLS test")
    data, password = tmp_path / "data", generate_password()
    _register(data, "dev-a", password)
    mqtt_port, tls_port = _free_ports(2)
    settings = Settings(
        port=0,
        data_dir=str(data),
        mqtt_port=mqtt_port,
        mqtt_tls_port=tls_port,
        discovery=False,
    )
    async with Service(_app(tmp_path / "app"), settings) as service:
        assert service.scheme == "http"  # the broker's TLS alone; the API stays plain
        config = (data / "mosquitto" / CONFIG_NAME).read_text()
        assert f"listener {tls_port} 127.0.0.1\ncertfile {data / 'tls' / 'server.crt'}" in config
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.to_thread(_handshake_without_the_ca, tls_port)
        ca = data / "tls" / "ca.crt"
        await asyncio.to_thread(_publish_over_tls, tls_port, ca, "dev-a", password)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        while not (rows := await service.gateway.run_query("readings:everything")):
            assert loop.time() < deadline, "the reading sent over TLS never reached the store"
            await asyncio.sleep(0.02)
        assert [(row["device"], row["celsius"]) for row in rows] == [("dev-a", 21.5)]


def test_mqtt_config_gives_debians_mosquitto_a_tls_listener_with_the_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``outpost mqtt config --dir`` (what outpost-mosquitto-sync runs as root): the drop-in
    names copies of the certificate and key in DIR, which a stock-like Mosquitto serves."""
    mosquitto = ensure_programs(["mosquitto"], ["mosquitto"], "the MQTT over TLS test")["mosquitto"]
    app, data, files = _app(tmp_path / "app"), tmp_path / "data", tmp_path / "files"
    mqtt_port, tls_port = _free_ports(2)
    monkeypatch.setenv("OUTPOST_MQTT_PORT", str(mqtt_port))
    monkeypatch.setenv("OUTPOST_MQTT_TLS_PORT", str(tls_port))
    flags = [str(app), "--data-dir", str(data)]
    assert main(["device", "add", "dev-a", "--json", *flags]) == 0
    password = json.loads(capsys.readouterr().out)["password"]
    assert main(["mqtt", "config", *flags, "--dir", str(files)]) == 0
    drop_in = (files / "outpost.conf").read_text()
    assert f"listener {tls_port} 127.0.0.1\ncertfile {files / 'server.crt'}\n" in drop_in
    assert (files / "server.crt").read_bytes() == (data / "tls" / "server.crt").read_bytes()
    assert (files / "server.key").stat().st_mode & 0o777 == 0o600
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "outpost.conf").write_text(drop_in)
    stock = tmp_path / "mosquitto.conf"
    stock.write_text(
        f"pid_file {tmp_path}/mosquitto.pid\npersistence true\n"
        f"persistence_location {tmp_path}/\nlog_dest stderr\n"
        f"include_dir {tmp_path}/conf.d\nuser {pwd.getpwuid(os.geteuid()).pw_name}\n"
    )
    log = tmp_path / "mosquitto.log"
    with log.open("wb") as out:
        broker = subprocess.Popen([mosquitto, "-c", str(stock)], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while b" running" not in log.read_bytes():
            assert broker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        _publish_over_tls(tls_port, data / "tls" / "ca.crt", "dev-a", password)
    finally:
        broker.terminate()
        broker.wait(DEADLINE_S)
