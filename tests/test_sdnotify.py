"""systemd's notify protocol (``gateway.sdnotify``): a real datagram socket stands in for
systemd, as ``Type=notify`` and ``WatchdogSec=`` would set it up, for the helpers and for
a real ``outpost serve``: READY only once calls are served, the watchdog fed while the
event loop turns (and not while it is blocked), STOPPING at SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.sdnotify import Notifier, feed_watchdog, stop_feeding, watchdog_interval_s

OUTPOST = Path(sys.executable).parent / "outpost"
GREENHOUSE = Path(__file__).resolve().parent.parent / "examples" / "greenhouse"


class FakeSystemd:
    """The notify socket, read on a thread as systemd would: every datagram, with when
    it came."""

    def __init__(self, address: str) -> None:
        self.env_value = address
        bound = "\0" + address[1:] if address.startswith("@") else address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bound)
        self.sock.settimeout(0.05)
        self.got: list[tuple[float, str]] = []
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.got.append((time.monotonic(), data.decode()))

    def close(self) -> None:
        self._closed.set()
        self._reader.join()
        self.sock.close()

    def wait_for(self, line: str, deadline_s: float = 30.0) -> float:
        """When a datagram holding ``line`` came (waiting for it if need be)."""
        end = time.monotonic() + deadline_s
        while True:
            for at, text in list(self.got):
                if line in text.split("\n"):
                    return at
            if time.monotonic() > end:
                raise AssertionError(f"no {line!r} within {deadline_s} s; got {self.got}")
            time.sleep(0.01)

    def count(self, line: str) -> int:
        return sum(line in text.split("\n") for _, text in list(self.got))


@pytest.fixture(params=["path", "abstract"])
def systemd(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FakeSystemd]:
    name = f"outpost-test-{uuid.uuid4().hex}"
    address = str(tmp_path / "notify") if request.param == "path" else f"@{name}"
    fake = FakeSystemd(address)
    yield fake
    fake.close()


def test_a_state_line_reaches_the_notify_socket(systemd: FakeSystemd) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": systemd.env_value})
    assert notifier.enabled
    assert notifier.send("READY=1", "STATUS=serving")
    systemd.wait_for("READY=1", deadline_s=2)
    assert systemd.got[0][1] == "READY=1\nSTATUS=serving"


def test_without_systemd_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.send("READY=1")


def test_a_socket_that_is_gone_is_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    with caplog.at_level(logging.WARNING, logger="gateway.sdnotify"):
        assert not notifier.send("WATCHDOG=1")
        assert not notifier.send("WATCHDOG=1")
    assert len([r for r in caplog.records if "could not notify systemd" in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "2000000"}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_interval_is_half_the_timeout(
    env: dict[str, str], expected: float | None
) -> None:
    assert watchdog_interval_s(env) == expected


async def test_a_blocked_event_loop_stops_feeding_the_watchdog(systemd: FakeSystemd) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": systemd.env_value})
    feeding = asyncio.create_task(feed_watchdog(notifier, 0.02))
    await asyncio.sleep(0.2)
    time.sleep(0.5)  # noqa: ASYNC251 - the loop blocked: no feeding while it is
    await asyncio.sleep(0.2)
    await stop_feeding(feeding)
    await asyncio.sleep(0.1)  # the last datagrams read
    times = [at for at, text in systemd.got if text == "WATCHDOG=1"]
    gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False))
    assert len(times) >= 10
    assert gaps[-1] >= 0.45  # the blocked half second
    assert gaps[len(gaps) // 2] < 0.1  # fed every 20 ms otherwise


def _health_ready(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=5) as r:
            return int(r.status)
    except OSError:
        return 0


def test_outpost_serve_says_ready_feeds_the_watchdog_and_says_stopping(
    tmp_path: Path, systemd: FakeSystemd
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")},
        "OUTPOST_MQTT_BROKER": "off",
        "NOTIFY_SOCKET": systemd.env_value,
        "WATCHDOG_USEC": "400000",  # fed every 0.2 s
    }
    cmd = [str(OUTPOST), "serve", str(GREENHOUSE), "--data-dir", str(tmp_path / "d"), "--port", "0"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = int(line.rsplit(":", 1)[1])
        ready_at = systemd.wait_for("READY=1")
        assert _health_ready(port) == 200  # READY came once calls are served
        ready = next(text for at, text in systemd.got if at == ready_at)
        assert f"MAINPID={proc.pid}" in ready.split("\n")
        deadline = time.monotonic() + 10
        while systemd.count("WATCHDOG=1") < 3:
            assert time.monotonic() < deadline, f"the watchdog was not fed: {systemd.got}"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        systemd.wait_for("STOPPING=1")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
