"""A real Mosquitto on an ephemeral port for the MQTT tests, and small paho helpers.

The broker runs on files made by ``gateway.mqtt.broker_files``; a test gets its own
temp directory and port, so tests can run in parallel. A port is picked by binding port
0; if another process takes it before Mosquitto binds, Mosquitto exits with "Address
already in use" and the kit retries with a new port. Waits poll a condition against a
deadline; stop is SIGTERM, then SIGKILL after a deadline, so no broker outlives a test.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import queue
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from debian import ensure_programs
from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage, MQTTv5
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.mqtt.broker_files import CONFIG_NAME, BrokerSpec, write_broker_files

START_DEADLINE_S = 10.0
STOP_DEADLINE_S = 10.0
WAIT_DEADLINE_S = 10.0
PORT_ATTEMPTS = 5


def mosquitto_path() -> str:
    """The ``mosquitto`` program; installed from Debian when missing (as root)."""
    return ensure_programs(["mosquitto"], ["mosquitto"], "the MQTT tests")["mosquitto"]


def current_user() -> str:
    """This process's user: the broker must run as it to read the 0600 files."""
    return pwd.getpwuid(os.geteuid()).pw_name


def free_port() -> int:
    """A port that was free a moment ago (the caller retries if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Broker:
    """A running (or stopped) Mosquitto on the files of ``spec``."""

    spec: BrokerSpec
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def port(self) -> int:
        return self.spec.port

    @property
    def config_path(self) -> Path:
        return self.spec.directory / CONFIG_NAME

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> bool:
        """Start on the written files; False if the port was taken, fails on other errors."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [mosquitto_path(), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if "Address already in use" in self.log():
                    return False
                raise AssertionError(f"mosquitto exited {self.process.returncode}:\n{self.log()}")
            if _accepts(self.spec.port):
                return True
            time.sleep(0.01)
        self.stop()
        raise AssertionError(f"mosquitto did not accept connections in time:\n{self.log()}")

    def reload(self) -> None:
        """SIGHUP: Mosquitto rereads its password file and ACL (mosquitto(8), Signals)."""
        assert self.process is not None and self.process.poll() is None, self.log()
        self.process.send_signal(signal.SIGHUP)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM (Mosquitto saves its database), SIGKILL after a deadline; idempotent."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                return process.wait(STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                process.kill()
        return process.wait()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def running_broker(make_spec: Callable[[int], BrokerSpec], work: Path) -> Iterator[Broker]:
    """A broker on files from ``make_spec(port)``, started on a free port, stopped after."""
    broker: Broker | None = None
    try:
        for _ in range(PORT_ATTEMPTS):
            spec = make_spec(free_port())
            write_broker_files(spec)
            broker = Broker(spec, work / "mosquitto.log")
            if broker.start():
                break
        else:
            raise AssertionError(f"no free port after {PORT_ATTEMPTS} attempts")
        yield broker
    finally:
        if broker is not None:
            broker.stop()


@dataclass
class Session:
    """A paho MQTT 5 client run by paho's own thread; what it receives goes to a queue."""

    client: Client
    connack: ReasonCode
    messages: queue.Queue[MQTTMessage] = field(default_factory=queue.Queue)
    pubacks: queue.Queue[ReasonCode] = field(default_factory=queue.Queue)

    def subscribe(self, *topics: str) -> list[ReasonCode]:
        """Subscribe at QoS 1 and wait for the SUBACK; its reason codes."""
        done: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.client.on_subscribe = lambda _c, _u, _mid, codes, _p: done.put(codes)
        result, _mid = self.client.subscribe([(topic, 1) for topic in topics])
        assert result == 0, f"subscribe failed: {result}"
        return done.get(timeout=WAIT_DEADLINE_S)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish at QoS 1 and wait for the PUBACK."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(WAIT_DEADLINE_S)
        assert info.is_published(), f"no PUBACK for {topic}"

    def publish_refused(self, topic: str, payload: bytes) -> ReasonCode:
        """Publish at QoS 1 where the ACL forbids it; the PUBACK's reason code.

        Mosquitto 2.0.11 answers a denied publish (QoS 0 or 1, MQTT 3.1.1 or 5) with a
        PUBACK "Not authorized" where there is one, then closes the connection: a
        session is good for one refused publish.
        """
        self.client.publish(topic, payload, qos=1)
        return self.pubacks.get(timeout=WAIT_DEADLINE_S)

    def receive(self) -> MQTTMessage:
        return self.messages.get(timeout=WAIT_DEADLINE_S)


@contextlib.contextmanager
def session(port: int, username: str | None, password: str | None) -> Iterator[Session]:
    """A connected client; the CONNACK reason is in ``.connack`` (refused ones too)."""
    client = Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"test-{uuid.uuid4().hex[:12]}",
        protocol=MQTTv5,
    )
    if username is not None:
        client.username_pw_set(username, password)
    connacks: queue.Queue[ReasonCode] = queue.Queue()
    received: queue.Queue[MQTTMessage] = queue.Queue()

    def on_connect(
        _c: Client, _u: object, _f: ConnectFlags, code: ReasonCode, _p: Properties | None
    ) -> None:
        connacks.put(code)

    def on_disconnect(
        _c: Client, _u: object, _f: DisconnectFlags, code: ReasonCode, _p: Properties | None
    ) -> None:
        if code.is_failure:
            connacks.put(code)

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_message = lambda _c, _u, message: received.put(message)
    pubacks: queue.Queue[ReasonCode] = queue.Queue()
    client.on_publish = lambda _c, _u, _mid, code, _p: pubacks.put(code)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        code = connacks.get(timeout=WAIT_DEADLINE_S)
        if code.is_failure:
            client.loop_stop()  # paho would retry a refused connect; the test wants one
        yield Session(client, code, received, pubacks)
    finally:
        client.disconnect()
        client.loop_stop()


def connack_until(port: int, username: str, password: str, *, refused: bool) -> None:
    """Connect until the CONNACK is refused (or accepted); a reload is not announced."""
    deadline = time.monotonic() + WAIT_DEADLINE_S
    while True:
        with session(port, username, password) as client:
            if client.connack.is_failure == refused:
                return
        assert time.monotonic() < deadline, f"{username}: CONNACK still {client.connack}"
        time.sleep(0.05)


def assert_only(sub: Session, expected: list[tuple[str, bytes]]) -> None:
    """The next messages are exactly ``expected``, in order, and nothing came before.

    A broker drops a forbidden publish silently; one client's messages are delivered in
    order, so a forbidden one sent before ``expected`` would arrive first.
    """
    got = [(m.topic, m.payload) for m in (sub.receive() for _ in expected)]
    assert got == expected
