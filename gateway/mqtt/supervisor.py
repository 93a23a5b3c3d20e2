"""``ManagedBroker``: Debian's Mosquitto run, watched and stopped by the gateway.

``start`` writes the broker's files (``broker_files``) with a fresh bridge password,
reaps a broker an earlier run left behind, spawns Mosquitto and returns once it
accepts connections; a task then restarts it with backoff whenever it dies; ``stop``
ends it with SIGTERM (Mosquitto saves its persistence database on it), SIGKILL after a
deadline. Mosquitto's stderr is relayed to the logger ``gateway.mqtt.broker``.

A gateway killed with ``kill -9`` must not leave a broker holding the port. Two
guards, because each alone has a gap:

- Mosquitto is spawned through ``setpriv --pdeathsig TERM``: the kernel sends it
  SIGTERM when its parent dies. The signal follows the *thread* that forked, not the
  process, so the spawn must happen on the event loop's thread (it does: asyncio's
  ``create_subprocess_exec`` forks there), never from a worker thread that may end.
- The pidfile (``broker_pid``): the next start stops a survivor that is provably ours
  (``/proc/PID/cmdline``), for the cases the signal misses (no ``setpriv``, a
  credential change clearing it, a loop run on a thread that outlived the parent).

The bridge's password is new at every start and exists only in memory (the returned
``BrokerEndpoint``); the password file holds its hash beside the devices' entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import BrokerError, MissingProgramError
from gateway.mqtt import broker_pid
from gateway.mqtt.broker_files import (
    BRIDGE_USER,
    CONFIG_NAME,
    PASSWORD_FILE_NAME,
    BrokerSpec,
    BrokerTls,
    write_broker_files,
)
from gateway.mqtt.endpoint import BrokerEndpoint
from gateway.mqtt.passwords import generate_password, hash_password, read_password_file
from gateway.mqtt.routes import MqttRouter
from gateway.mqtt.topics import placeholders
from gateway.private_files import files_lock
from gateway.tls import ServerTls

log = logging.getLogger("gateway.mqtt")
broker_log = logging.getLogger("gateway.mqtt.broker")

# Debian installs mosquitto in /usr/sbin, which a non-root PATH usually lacks.
SEARCH_DIRS = ("/usr/sbin", "/usr/local/sbin")
INSTALL_HINT = "sudo apt-get install mosquitto"
READY_DEADLINE_S = 10.0  # spawn -> accepting connections (a Pi 3 takes ~0.1 s)
STOP_DEADLINE_S = 5.0  # SIGTERM -> exit; saving a large persistence db takes a while
REAP_DEADLINE_S = 5.0  # the same for a survivor of an earlier run
POLL_INTERVAL_S = 0.02
RESTART_FIRST_S = 0.5
RESTART_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0  # a broker that ran this long restarts from the first backoff again
STDERR_LIMIT_BYTES = 1024 * 1024


def find_mosquitto() -> str:
    """The ``mosquitto`` program: on PATH, else in the sbin directories Debian uses."""
    found = shutil.which(broker_pid.PROGRAM)
    if found is not None:
        return found
    for directory in SEARCH_DIRS:
        candidate = os.path.join(directory, broker_pid.PROGRAM)
        if os.access(candidate, os.X_OK):
            return candidate
    raise MissingProgramError(
        "the managed MQTT broker needs mosquitto, which is not installed: run "
        f'`{INSTALL_HINT}` (or set mqtt_broker = "external" or "off")'
    )


def current_user() -> str | None:
    """The user Mosquitto must run as: ours when we are root (else it would drop to the
    ``mosquitto`` user, which cannot read our 0600 files); None otherwise."""
    return pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None


def broker_tls(port: int, tls: ServerTls | None) -> BrokerTls | None:
    """The TLS listener on ``port`` (``mqtt_tls_port``; 0 = none) with the certificate
    the gateway serves. Mosquitto runs as the gateway's user, so it reads the key."""
    if not port or tls is None:
        return None
    return BrokerTls(port, tls.files.cert.absolute(), tls.files.key.absolute())


def route_patterns(router: MqttRouter | None) -> tuple[list[str], list[str]]:
    """(ingest patterns, publish patterns) for the ACL.

    A publish topic without ``{device}`` (``site/summary``) belongs to no device, so the
    ACL gives no device read access to it; only the bridge, which reads everything.
    """
    if router is None:
        return [], []
    ingest = [route.pattern for route in router.ingest_routes]
    publish = [
        route.pattern for route in router.publish_routes if "device" in placeholders(route.segments)
    ]
    return ingest, publish


@dataclass
class _Run:
    """One Mosquitto process and the task relaying its stderr."""

    process: asyncio.subprocess.Process
    relay: asyncio.Task[None] | None = None
    last_line: str = ""
    running: asyncio.Event = field(default_factory=asyncio.Event)  # its "running" line
    accepting: bool = False  # it answered a connection


class ManagedBroker:
    """Mosquitto on ``host:port`` with its files in ``<data_dir>/mosquitto``, supervised.

    ``start`` returns where the bridge connects; ``update_routes`` rewrites the ACL and
    reloads; ``stop`` is idempotent and leaves no task or process behind.
    """

    def __init__(
        self,
        data_dir: Path,
        host: str,
        port: int,
        router: MqttRouter | None,
        *,
        run_as_user: str | None = None,
        restart_first_s: float = RESTART_FIRST_S,
        tls: BrokerTls | None = None,
    ) -> None:
        self.directory = broker_pid.broker_directory(data_dir)
        self.host = host
        self.port = port
        self._data_dir = data_dir
        self._router = router
        self._run_as_user = run_as_user
        self.tls = tls
        self._restart_first_s = restart_first_s
        self._bridge_hash = ""
        self._argv: list[str] = []
        self._run: _Run | None = None
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The PID of the broker accepting connections (None before start, after stop and
        from an exit until the restarted broker accepts)."""
        run = self._run
        if run is None or not run.accepting or run.process.returncode is not None:
            return None
        return run.process.pid

    async def start(self) -> BrokerEndpoint:
        """Write the files, reap a survivor, spawn, wait until it accepts; then supervise."""
        program = find_mosquitto()
        password = generate_password()
        self._bridge_hash = hash_password(password)
        await asyncio.to_thread(self._write_files)
        await reap_survivor(self.directory)
        self._argv = _argv(program, self.directory / CONFIG_NAME)
        try:
            await self._spawn_ready()
        except BaseException:
            await self.stop()
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name="outpost-mqtt-broker")
        tls = f", TLS on port {self.tls.port}" if self.tls is not None else ""
        log.info("MQTT broker (mosquitto) on %s:%d%s, pid %s", self.host, self.port, tls, self.pid)
        return BrokerEndpoint(_connect_host(self.host), self.port, BRIDGE_USER, password)

    async def update_routes(self, router: MqttRouter | None) -> None:
        """Rewrite the ACL for ``router``'s topics and reload the broker (no restart:
        routes change the ACL only, never the listener)."""
        self._router = router
        await asyncio.to_thread(self._write_files)
        await self.reload()

    async def reload(self) -> None:
        """SIGHUP: Mosquitto rereads its password file and ACL (mosquitto(8), Signals)."""
        run = self._run
        # Only once it accepts: before Mosquitto sets its handler (or while setpriv has
        # not executed it yet) SIGHUP would end it. A broker still starting reads the
        # files as they are now anyway.
        if run is not None and run.accepting and run.process.returncode is None:
            run.process.send_signal(signal.SIGHUP)

    def save(self) -> None:
        """SIGUSR1: Mosquitto writes its persistence database now (mosquitto(8)).

        The bridge calls it once its subscriptions are in place: autosave waits for 1,000
        changes, and a broker killed before that would come back without the bridge's
        session, dropping what devices publish until the bridge subscribes again."""
        run = self._run
        if run is not None and run.accepting and run.process.returncode is None:
            run.process.send_signal(signal.SIGUSR1)

    async def stop(self) -> None:
        """Stop supervising, SIGTERM the broker, SIGKILL after a deadline. Idempotent."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        run, self._run = self._run, None
        if run is not None:
            await _terminate(run)
            broker_pid.remove_pid(self.directory, run.process.pid)

    # --- files ------------------------------------------------------------------------

    def _write_files(self) -> None:
        """Config, ACL and password file; every device entry kept, the bridge's replaced."""
        ingest, publish = route_patterns(self._router)
        with files_lock(self.directory):
            try:
                users = read_password_file(self.directory / PASSWORD_FILE_NAME)
            except ValueError as exc:
                raise BrokerError(f"{exc} (fix or move the file)") from None
            users[BRIDGE_USER] = self._bridge_hash
            spec = BrokerSpec(
                self.host,
                self.port,
                self._data_dir,
                BRIDGE_USER,
                users,
                ingest,
                publish,
                self._run_as_user,
                self.tls,
            )
            write_broker_files(spec)

    # --- the process ------------------------------------------------------------------

    async def _spawn_ready(self) -> None:
        """Spawn Mosquitto and wait until it accepts connections; ``BrokerError`` if not."""
        # On the loop's thread, on purpose: the parent-death signal fires when the thread
        # that forked ends (see the module docstring), and this thread lives as long as
        # the gateway does. Never move this into asyncio.to_thread.
        process = await asyncio.create_subprocess_exec(
            *self._argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            limit=STDERR_LIMIT_BYTES,
            # Its own session: a Ctrl-C in the terminal reaches the gateway, which stops
            # the broker in order, instead of killing the broker under a running bridge.
            start_new_session=True,
        )
        run = self._run = _Run(process)
        run.relay = asyncio.create_task(_relay(run), name="outpost-mqtt-broker-log")
        try:
            await self._wait_ready(run)
        except BaseException:
            await _terminate(run)
            raise
        # Only now: ``outpost device add`` SIGHUPs the PID it names, which would end a
        # broker that has not set its handler yet. A gateway killed before this line
        # leaves a broker the parent-death signal ends.
        await asyncio.to_thread(broker_pid.write_pid, self.directory, process.pid)

    async def _wait_ready(self, run: _Run) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_DEADLINE_S
        host = _connect_host(self.host)
        while True:
            if run.process.returncode is not None:
                await _drain(run)
                raise BrokerError(self._exit_reason(run))
            # "running" comes after every listener is bound: a probe that connects before
            # it may have reached another program on the port, not ours.
            if run.running.is_set() and await _accepts(host, self.port):
                run.accepting = True
                return
            if loop.time() > deadline:
                raise BrokerError(
                    f"the MQTT broker did not accept connections on {self.host}:{self.port} "
                    f"within {READY_DEADLINE_S:g} s (last line: {run.last_line or 'none'})"
                )
            await asyncio.sleep(POLL_INTERVAL_S)

    def _exit_reason(self, run: _Run) -> str:
        line, port = run.last_line, self.port
        if "Address already in use" in line and self.tls is not None:
            tls_port = self.tls.port
            return (
                f"MQTT port {port} or TLS port {tls_port} is in use on {self.host} (mosquitto: "
                f"{line}); set mqtt_port or mqtt_tls_port, or stop the other broker "
                f"(`ss -ltnp 'sport = :{port}' or 'sport = :{tls_port}'` names it)"
            )
        if "Address already in use" in line:
            return (
                f"MQTT port {port} is in use on {self.host} (mosquitto: {line}); set mqtt_port "
                f"or stop the other broker (`ss -ltnp 'sport = :{port}'` names it)"
            )
        status = _exit_status(run.process.returncode)
        return f"mosquitto {status} while starting (last line: {line or 'none'})"

    async def _supervise(self) -> None:
        """Restart the broker whenever it exits, with doubling backoff, until ``stop``."""
        loop = asyncio.get_running_loop()
        backoff_s = self._restart_first_s
        reported = False  # a failed restart was logged already
        while True:
            run = self._run
            assert run is not None
            started = loop.time()
            await run.process.wait()
            await _drain(run)
            if loop.time() - started >= HEALTHY_AFTER_S:
                backoff_s = self._restart_first_s
            if not reported:
                log.warning(
                    "the MQTT broker %s (last line: %s); restarting in %.1f s",
                    _exit_status(run.process.returncode),
                    run.last_line or "none",
                    backoff_s,
                )
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, RESTART_MAX_S)
            try:
                await self._spawn_ready()
            except BrokerError as exc:
                log.warning(
                    "the MQTT broker did not restart (next try in %.1f s): %s", backoff_s, exc
                )
                reported = True
            else:
                log.info("MQTT broker restarted, pid %s", self.pid)
                reported = False


def _exit_status(code: int | None) -> str:
    """``exited with status 1`` or ``was killed by SIGKILL`` (asyncio's code -9)."""
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def _argv(program: str, config: Path) -> list[str]:
    setpriv = shutil.which("setpriv") or _sbin("setpriv")
    if setpriv is None:
        log.warning("setpriv (util-linux) not found: the broker may outlive a killed gateway")
        return [program, "-c", str(config)]
    return [setpriv, "--pdeathsig", "TERM", program, "-c", str(config)]


def _sbin(name: str) -> str | None:
    for directory in ("/usr/bin", *SEARCH_DIRS):
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK):
            return path
    return None


def _connect_host(host: str) -> str:
    """Where to reach a listener bound to ``host`` from this machine."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


async def _accepts(host: str, port: int) -> bool:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _relay(run: _Run) -> None:
    """Mosquitto's stderr lines to ``gateway.mqtt.broker``; remember the last one."""
    stream = run.process.stderr
    assert stream is not None
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # a line over the limit: skip it, keep relaying
            continue
        if not raw:
            return
        line = raw.decode(errors="replace").rstrip()
        if not line:
            continue
        run.last_line = line
        if " running" in line and line.startswith("mosquitto version"):
            run.running.set()
        level = logging.WARNING if line.startswith(("Error", "Warning")) else logging.INFO
        broker_log.log(level, "%s", line)


async def _drain(run: _Run) -> None:
    """Wait for the relay to reach the end of stderr (bounded), so ``last_line`` is it."""
    if run.relay is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(run.relay), STOP_DEADLINE_S)


async def _terminate(run: _Run) -> None:
    """SIGTERM, wait with a deadline, SIGKILL; then end the relay task."""
    process = run.process
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_DEADLINE_S)
        except TimeoutError:
            log.warning("the MQTT broker ignored SIGTERM for %g s; killing it", STOP_DEADLINE_S)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if run.relay is not None:
        await _drain(run)
        run.relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run.relay


async def reap_survivor(directory: Path) -> None:
    """Stop a broker an earlier run of this data directory left running (ours only)."""
    pid = await asyncio.to_thread(broker_pid.read_pid, directory)
    if pid is None or not broker_pid.is_our_broker(pid, directory):
        return
    log.warning("a broker left by an earlier run (pid %d) is still running; stopping it", pid)
    for signum in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
        if await _gone(pid, directory, REAP_DEADLINE_S):
            broker_pid.remove_pid(directory, pid)
            return
    raise BrokerError(f"the broker left by an earlier run (pid {pid}) does not stop")


async def _gone(pid: int, directory: Path, deadline_s: float) -> bool:
    """Whether ``pid`` stops being our broker (exits, or is a zombie) within the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while broker_pid.is_our_broker(pid, directory):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(POLL_INTERVAL_S)
    return True
