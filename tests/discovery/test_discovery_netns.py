"""A gateway announced in one network namespace, found by ``outpost discover`` in another.

The two namespaces are joined by a veth pair (``netns_pair.py``): real multicast on a
real link, so the packets never reach this machine's own network. The gateway is
``outpost serve`` as systemd runs it, with HTTP actions and the managed broker, so the
TXT record carries every port; its stop sends the goodbyes a live browser sees.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from debian import ensure_programs
from netns_pair import (
    ANNOUNCER_ADDRESS,
    Lines,
    NamespacePair,
    give_address,
    make_pair,
    remove,
    start,
)

REPO = Path(__file__).resolve().parents[2]
OUTPOST = str(Path(sys.executable).parent / "outpost")
HTTP = """
from aiohttp import web
from gateway import http_action, http_router

http = http_router()

@http.route(path="/hello", method="GET")
@http_action
async def hello(ctx, request):
    return web.Response(text="hello")
"""
# A browser that prints each change it sees: the goodbyes show as "Removed".
WATCHER = """
import asyncio
from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

def seen(zeroconf, service_type, name, state_change):
    print(state_change.name, name, flush=True)

async def main():
    async with AsyncZeroconf() as zc:
        AsyncServiceBrowser(zc.zeroconf, "_outpost._tcp.local.", handlers=[seen])
        print("browsing", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
def pair() -> Iterator[NamespacePair]:
    made = make_pair()
    yield made
    remove(made)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts in the namespaces: killed (if still running) at the end,
    before the namespaces go."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()


def _app(tmp_path: Path, *, http: bool) -> Path:
    app = tmp_path / "app"
    shutil.copytree(REPO / "examples" / "greenhouse", app)
    if http:
        (app / "convex" / "http.py").write_text(HTTP)
    return app


def _serve(
    pair: NamespacePair,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
    *,
    http: bool = False,
    **settings: str,
) -> tuple[subprocess.Popen[bytes], Lines]:
    env = {**os.environ, "OUTPOST_MQTT_BROKER": "off"}
    env.update({f"OUTPOST_{name.upper()}": value for name, value in settings.items()})
    argv = [OUTPOST, "serve", str(_app(tmp_path, http=http)), "--host", "0.0.0.0", "--port", "0"]
    argv += ["--data-dir", str(tmp_path / "data")]
    process, lines = start(pair.exec(pair.announcer, *argv), env, tmp_path)
    processes.append(process)
    return process, lines


def _discover(pair: NamespacePair, *flags: str) -> subprocess.CompletedProcess[str]:
    argv = pair.exec(pair.browser, OUTPOST, "discover", *flags)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def _stop(process: subprocess.Popen[bytes], lines: Lines) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0, lines.text()
    lines.rest()


def test_discover_finds_the_gateway_and_its_goodbyes_withdraw_it(
    pair: NamespacePair, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    mosquitto = ensure_programs(["mosquitto"], ["mosquitto"], "the managed broker's record")
    assert mosquitto
    name = f"greenhouse {pair.announcer[-6:]}"
    serve, lines = _serve(
        pair, processes, tmp_path, http=True,
        mqtt_broker="managed", mqtt_host="0.0.0.0", site_port="0", discovery_name=name,
    )  # fmt: skip
    port = int(lines.wait_for("Outpost listening on").rsplit(":", 1)[1])
    site_port = int(lines.wait_for("Outpost HTTP actions on").rsplit(":", 1)[1])
    found_id = re.search(r"gateway ([0-9a-f]{32}) ready", lines.wait_for(" ready: "))
    assert found_id is not None
    gateway_id = found_id.group(1)
    announced = lines.wait_for("announced on the LAN as")
    assert f"{ANNOUNCER_ADDRESS}:{port}" in announced

    done = _discover(pair, "--json", "--timeout", "3")
    assert done.returncode == 0, done.stderr
    [gateway] = json.loads(done.stdout)
    assert gateway == {
        "name": name,
        "instance": name,
        "address": ANNOUNCER_ADDRESS,
        "addresses": [ANNOUNCER_ADDRESS],
        "port": port,
        "sitePort": site_port,
        "mqttPort": 1883,
        "version": gateway["version"],
        "gatewayId": gateway_id,
        "tls": False,
        "mqttTlsPort": None,
    }
    assert gateway["version"] == _installed_version()

    plain = _discover(pair, "--timeout", "2")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.split("\n") == [
        f"{name}  {ANNOUNCER_ADDRESS}:{port}  v{gateway['version']}  {gateway_id}  "
        f"actions :{site_port}  mqtt :1883",
        "",
    ]

    watcher_argv = pair.exec(pair.browser, sys.executable, "-c", WATCHER)
    watcher, seen = start(watcher_argv, dict(os.environ), tmp_path)
    processes.append(watcher)
    seen.wait_for(f"Added {name}._outpost._tcp.local.")
    _stop(serve, lines)  # the goodbyes go out before the process ends
    seen.wait_for(f"Removed {name}._outpost._tcp.local.", timeout_s=5)


def test_a_gateway_with_discovery_off_is_not_found(
    pair: NamespacePair, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    serve, lines = _serve(pair, processes, tmp_path, discovery="false")
    lines.wait_for("Outpost listening on")
    done = _discover(pair, "--json", "--timeout", "2")
    assert (done.returncode, json.loads(done.stdout)) == (1, [])
    assert "no gateway answered within 2 s" in done.stderr
    _stop(serve, lines)
    assert "announced" not in lines.text()


def test_a_busy_mdns_port_is_one_warning_and_the_gateway_serves(
    pair: NamespacePair, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    # A responder that holds UDP 5353 alone (no SO_REUSEADDR), as some embedded ones do.
    hold = "import socket, sys\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    hold += "s.bind(('0.0.0.0', 5353))\nprint('held', flush=True)\nsys.stdin.read()"
    holder = subprocess.Popen(
        pair.exec(pair.announcer, sys.executable, "-c", hold),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    processes.append(holder)
    Lines(holder).wait_for("held")
    serve, lines = _serve(pair, processes, tmp_path)
    lines.wait_for("Outpost listening on")  # printed after the discovery step
    _stop(serve, lines)
    warnings = [line for line in lines.seen if "WARNING" in line or "ERROR" in line]
    assert len(warnings) == 1, lines.text()
    assert "not announced on the LAN" in warnings[0]
    assert "UDP port 5353 is held" in warnings[0]


def test_a_gateway_started_before_it_had_an_address_is_announced_once_it_has_one(
    processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    pair = make_pair(announcer_address=False)  # a Pi that boots before DHCP answers
    try:
        serve, lines = _serve(
            pair, processes, tmp_path, discovery_check_interval_s="0.2", discovery_name="late"
        )
        lines.wait_for("Outpost listening on")
        lines.wait_for("not announced on the LAN: no address on the LAN yet")
        give_address(pair)
        lines.wait_for(f"announced on the LAN as 'late' ({ANNOUNCER_ADDRESS}:")
        done = _discover(pair, "--json", "--timeout", "2")
        assert done.returncode == 0, done.stderr
        [gateway] = json.loads(done.stdout)
        assert (gateway["name"], gateway["address"]) == ("late", ANNOUNCER_ADDRESS)
        _stop(serve, lines)
    finally:
        for process in processes:  # before the namespaces go
            if process.poll() is None:
                process.kill()
        remove(pair)


def _installed_version() -> str:
    from gateway.discovery.records import outpost_version

    return outpost_version()
