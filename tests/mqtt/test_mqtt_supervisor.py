"""``ManagedBroker`` against the real Mosquitto: start, stop, restart after ``kill -9``,
survivors of a killed gateway, a port in use, a missing program, route updates."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mosquitto_kit import free_port, mosquitto_path, session

from gateway.errors import BrokerError, MissingProgramError
from gateway.mqtt import broker_pid, supervisor
from gateway.mqtt.broker_files import ACL_FILE_NAME, BRIDGE_USER, CONFIG_NAME, PASSWORD_FILE_NAME
from gateway.mqtt.endpoint import BrokerEndpoint
from gateway.mqtt.passwords import hash_password, read_password_file, write_password_file
from gateway.mqtt.routes import MqttRouter
from gateway.mqtt.supervisor import ManagedBroker, current_user

DEADLINE_S = 10.0
PORT_ATTEMPTS = 5


def _router(*ingest: str) -> MqttRouter:
    router = MqttRouter()
    for pattern in ingest:
        router.ingest(pattern, "readings:ingest")
    return router


async def _started(
    data: Path, router: MqttRouter | None = None
) -> tuple[ManagedBroker, BrokerEndpoint]:
    """A broker started on a free port (another port if one is taken meanwhile)."""
    mosquitto_path()  # installs Debian's mosquitto when missing (as root)
    for _ in range(PORT_ATTEMPTS):
        broker = ManagedBroker(
            data, "127.0.0.1", free_port(), router, run_as_user=current_user(), restart_first_s=0.05
        )
        try:
            return broker, await broker.start()
        except BrokerError as exc:
            if "in use" not in str(exc):
                raise
    raise AssertionError(f"no free port after {PORT_ATTEMPTS} attempts")


@pytest.fixture
async def managed(tmp_path: Path) -> AsyncIterator[tuple[ManagedBroker, BrokerEndpoint]]:
    broker, endpoint = await _started(tmp_path / "data", _router("sensors/{device}/t"))
    try:
        yield broker, endpoint
    finally:
        await broker.stop()


def _connects(endpoint: BrokerEndpoint, username: str, password: str | None) -> bool:
    with session(endpoint.port, username, password) as client:
        return not client.connack.is_failure


def _alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def _until(condition: object, what: str) -> None:
    """Poll ``condition()`` until true, failing after a deadline."""
    assert callable(condition)
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


# --- start and stop ---------------------------------------------------------------------


async def test_start_serves_the_bridge_and_stop_leaves_nothing(
    managed: tuple[ManagedBroker, BrokerEndpoint],
) -> None:
    broker, endpoint = managed
    assert (endpoint.host, endpoint.username) == ("127.0.0.1", BRIDGE_USER)
    assert endpoint.password and len(endpoint.password) >= 32
    assert await asyncio.to_thread(_connects, endpoint, BRIDGE_USER, endpoint.password)
    assert not await asyncio.to_thread(_connects, endpoint, BRIDGE_USER, "wrong")
    pid = broker.pid
    assert pid is not None and broker_pid.read_pid(broker.directory) == pid
    for name in (CONFIG_NAME, PASSWORD_FILE_NAME, ACL_FILE_NAME):
        text = (broker.directory / name).read_text()
        assert endpoint.password not in text  # the bridge's password is never on disk
        assert (broker.directory / name).stat().st_mode & 0o777 == 0o600
    assert "pattern write sensors/%u/t" in (broker.directory / ACL_FILE_NAME).read_text()
    await broker.stop()
    assert not _alive(pid)
    assert broker.pid is None and broker_pid.read_pid(broker.directory) is None
    await broker.stop()  # idempotent


async def test_each_start_has_a_new_bridge_password_and_keeps_the_devices(tmp_path: Path) -> None:
    data = tmp_path / "data"
    registry = data / "mosquitto" / PASSWORD_FILE_NAME
    registry.parent.mkdir(parents=True)
    write_password_file(registry, {"d1": hash_password("secret-d1")})
    first, one = await _started(data)
    try:
        assert await asyncio.to_thread(_connects, one, "d1", "secret-d1")
    finally:
        await first.stop()
    second, two = await _started(data)
    try:
        assert one.password != two.password
        assert set(read_password_file(registry)) == {"d1", BRIDGE_USER}
        assert await asyncio.to_thread(_connects, two, "d1", "secret-d1")
        assert not await asyncio.to_thread(_connects, two, BRIDGE_USER, one.password)
    finally:
        await second.stop()


# --- supervision ------------------------------------------------------------------------


async def test_a_broker_killed_with_sigkill_comes_back_on_the_same_port(
    managed: tuple[ManagedBroker, BrokerEndpoint], caplog: pytest.LogCaptureFixture
) -> None:
    broker, endpoint = managed
    old = broker.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    await _until(lambda: broker.pid not in (None, old), "a new broker")
    assert broker.port == endpoint.port
    assert await asyncio.to_thread(_connects, endpoint, BRIDGE_USER, endpoint.password)
    assert broker_pid.read_pid(broker.directory) == broker.pid
    assert "was killed by SIGKILL" in caplog.text


async def test_a_failed_restart_is_logged_and_retried_with_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker, endpoint = await _started(tmp_path / "data")
    try:
        broker._restart_first_s = 1.0  # time for the test to take the port meanwhile
        old = broker.pid
        assert old is not None
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            os.kill(old, signal.SIGKILL)
            await _until(lambda: not _accepting(endpoint.port), "the port to be free")
            squatter.bind(("127.0.0.1", endpoint.port))
            squatter.listen()
            await _until(lambda: "did not restart" in caplog.text, "a failed restart")
            assert f"MQTT port {endpoint.port} is in use" in caplog.text
        await _until(lambda: broker.pid not in (None, old), "the restart after the port is free")
        assert await asyncio.to_thread(_connects, endpoint, BRIDGE_USER, endpoint.password)
    finally:
        await broker.stop()


async def test_update_routes_rewrites_the_acl_and_reloads_the_same_process(
    managed: tuple[ManagedBroker, BrokerEndpoint], caplog: pytest.LogCaptureFixture
) -> None:
    broker, endpoint = managed
    caplog.set_level(logging.INFO, "gateway.mqtt.broker")
    pid = broker.pid
    await broker.update_routes(_router("sensors/{device}/humidity"))
    acl = (broker.directory / ACL_FILE_NAME).read_text()
    assert "pattern write sensors/%u/humidity" in acl and "sensors/%u/t\n" not in acl
    await _until(lambda: "Reloading config" in caplog.text, "the broker's reload line")
    assert broker.pid == pid
    assert await asyncio.to_thread(_connects, endpoint, BRIDGE_USER, endpoint.password)


# --- start failures ---------------------------------------------------------------------


async def test_a_port_in_use_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    mosquitto_path()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = ManagedBroker(tmp_path / "d", "127.0.0.1", port, None, run_as_user=current_user())
        with pytest.raises(BrokerError) as caught:
            await broker.start()
    message = str(caught.value)
    assert "\n" not in message
    assert f"MQTT port {port} is in use" in message
    assert "set mqtt_port" in message and f"ss -ltnp 'sport = :{port}'" in message
    assert broker.pid is None and broker_pid.read_pid(broker.directory) is None


async def test_a_missing_mosquitto_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(supervisor, "SEARCH_DIRS", ())
    broker = ManagedBroker(tmp_path / "d", "127.0.0.1", free_port(), None)
    with pytest.raises(MissingProgramError, match=r"apt-get install mosquitto"):
        await broker.start()
    assert not (tmp_path / "d").exists()  # nothing written


# --- a gateway killed with kill -9 ------------------------------------------------------

# A gateway-like parent: starts a ManagedBroker, prints its PID and port, waits forever.
CHILD = """
import asyncio, sys
from pathlib import Path
from gateway.mqtt.supervisor import ManagedBroker, current_user

async def main():
    broker = ManagedBroker(Path(sys.argv[1]), "127.0.0.1", int(sys.argv[2]), None,
                           run_as_user=current_user())
    await broker.start()
    print(broker.pid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _parent_with_broker(data: Path, port: int) -> tuple[subprocess.Popen[str], int]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()  # the child's own start deadline bounds this
    assert line.strip().isdigit(), child.stderr.read() if child.stderr else ""
    return child, int(line)


async def test_the_broker_dies_with_a_parent_killed_by_sigkill(tmp_path: Path) -> None:
    mosquitto_path()
    data, port = tmp_path / "data", free_port()
    parent, pid = await asyncio.to_thread(_parent_with_broker, data, port)
    try:
        assert _alive(pid)
        parent.kill()
        parent.wait(DEADLINE_S)
        await _until(lambda: not _alive(pid), "the parent-death signal to end the broker")
        # The pidfile is left behind; the next start finds no broker of ours and starts.
        broker = ManagedBroker(data, "127.0.0.1", port, None, run_as_user=current_user())
        endpoint = await broker.start()
        try:
            assert await asyncio.to_thread(_connects, endpoint, BRIDGE_USER, endpoint.password)
        finally:
            await broker.stop()
    finally:
        parent.kill()
        parent.communicate()


async def test_a_survivor_named_by_the_pidfile_is_reaped_by_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    first, endpoint = await _started(data)
    await first.stop()
    # A broker without the parent-death signal, as a killed gateway might leave it.
    survivor = await asyncio.create_subprocess_exec(
        mosquitto_path(),
        "-c",
        str(first.directory / CONFIG_NAME),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        broker_pid.write_pid(first.directory, survivor.pid)
        await _until(lambda: _accepting(endpoint.port), "the survivor to listen")
        second = ManagedBroker(data, "127.0.0.1", endpoint.port, None, run_as_user=current_user())
        await second.start()
        try:
            # SIGTERM, not SIGKILL: Mosquitto saves its database and exits 0.
            assert await asyncio.wait_for(survivor.wait(), DEADLINE_S) == 0
            assert second.pid != survivor.pid
            assert f"pid {survivor.pid}" in caplog.text
        finally:
            await second.stop()
    finally:
        if survivor.returncode is None:
            survivor.kill()
            await survivor.wait()


async def test_a_pidfile_naming_another_program_is_never_signalled(tmp_path: Path) -> None:
    other = await asyncio.create_subprocess_exec("sleep", "60")
    try:
        directory = broker_pid.broker_directory(tmp_path / "data")
        directory.mkdir(parents=True)
        broker_pid.write_pid(directory, other.pid)
        assert broker_pid.signal_broker(tmp_path / "data", signal.SIGHUP) is None
        await supervisor.reap_survivor(directory)
        assert other.returncode is None and _alive(other.pid)
    finally:
        other.kill()
        await other.wait()


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
