"""Helpers shared by the benchmarks in this folder (not part of the gateway)."""

from __future__ import annotations

import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO


def pin_to_cpu(cpu: int) -> None:
    """Run this whole process on one CPU, like ``taskset -c CPU``.

    The affinity is set, then the interpreter re-executes itself so that every thread
    it will ever have (writer, readers, watchdog, executor) inherits it. After the
    exec the affinity already matches, so this returns and the script carries on.
    """
    if os.sched_getaffinity(0) == {cpu}:
        return
    os.sched_setaffinity(0, {cpu})
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def affinity_text() -> str:
    cpus = sorted(os.sched_getaffinity(0))
    return f"{len(cpus)} cpu(s) {cpus} of {os.cpu_count()}"


def filesystem_of(path: Path) -> str:
    """``device (type) on mountpoint`` of the filesystem holding ``path``."""
    path = path.resolve()
    best = ("?", "?", "/")
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                device, mount, fstype, *_ = line.split()
                if (path == Path(mount) or Path(mount) in path.parents) and len(mount) >= len(
                    best[2]
                ):
                    best = (device, fstype, mount)
    except OSError:
        pass
    return f"{best[0]} ({best[1]}) on {best[2]}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_workdir(base: str | None) -> Path:
    return Path(tempfile.mkdtemp(prefix="outpost-bench-", dir=base))


def write_app(root: Path, files: dict[str, str]) -> Path:
    """An app directory ``root/app`` with ``convex/<name>`` files; returns it."""
    app = root / "app"
    convex = app / "convex"
    convex.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (convex / name).write_text(text)
    return app


def write_bytes(pid: int | str | None = "self") -> int | None:
    """A process's ``write_bytes`` (bytes sent towards the storage device); this one's by
    default. None when it cannot be read (or ``pid`` is None)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def threads_cpu(prefix: str) -> float:
    """CPU seconds used so far by the live threads whose name starts with ``prefix``."""
    total = 0.0
    for thread in threading.enumerate():
        if thread.name.startswith(prefix) and thread.ident is not None:
            try:
                total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except (OSError, AttributeError):
                pass
    return total


@dataclass
class Measurement:
    """One timed phase: wall time, bytes written, CPU of the main and named threads."""

    seconds: float
    written: int | None
    main_cpu: float
    thread_cpu: dict[str, float]
    process_cpu: float

    def rate(self, n: int) -> float:
        return n / self.seconds if self.seconds > 0 else float("inf")

    def bytes_per(self, n: int) -> float | None:
        return None if self.written is None or n == 0 else self.written / n

    def __add__(self, other: Measurement) -> Measurement:
        written = (
            None if self.written is None or other.written is None else self.written + other.written
        )
        threads = {k: v + other.thread_cpu.get(k, 0.0) for k, v in self.thread_cpu.items()}
        return Measurement(
            self.seconds + other.seconds,
            written,
            self.main_cpu + other.main_cpu,
            threads,
            self.process_cpu + other.process_cpu,
        )


class Meter:
    """Measure a phase: ``m = Meter(("outpost-writer",)); ...; m.stop()``."""

    def __init__(self, thread_prefixes: Sequence[str] = ()) -> None:
        self._prefixes = tuple(thread_prefixes)
        self._io = write_bytes()
        self._main = time.thread_time()
        self._proc = time.process_time()
        self._threads = {p: threads_cpu(p) for p in self._prefixes}
        self._t0 = time.perf_counter()

    def stop(self) -> Measurement:
        seconds = time.perf_counter() - self._t0
        io = write_bytes()
        written = None if io is None or self._io is None else io - self._io
        return Measurement(
            seconds,
            written,
            time.thread_time() - self._main,
            {p: threads_cpu(p) - self._threads[p] for p in self._prefixes},
            time.process_time() - self._proc,
        )


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fmt(value: float | None, spec: str = ",.0f") -> str:
    return "n/a" if value is None else format(value, spec)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def outpost_command() -> list[str]:
    """The installed ``outpost`` script beside this interpreter, else ``-m gateway.cli``."""
    script = Path(sys.executable).parent / "outpost"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


def first_line_with(out: IO[str], marker: str, timeout: float) -> str | None:
    """The first line of ``out`` containing ``marker``, or None after ``timeout`` s."""
    found: list[str] = []

    def read() -> None:
        for line in out:
            if marker in line:
                found.append(line.strip())
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return found[0] if found else None


def stop_process(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def raise_fd_limit() -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit; returns the new soft
    limit. Children inherit it, so call it before starting servers and client processes
    that hold many sockets (each socket is one descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def start_listening(
    cmd: list[str], marker: str, log: Path, timeout: float = 60.0
) -> tuple[subprocess.Popen[str], str]:
    """Start a server ``cmd`` (stderr to ``log``) and wait for its ready line holding
    ``marker`` and ``http://``; returns the process and the base URL from that line.
    Exits the bench when the line does not come (the process is killed)."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=log.open("w"), text=True, start_new_session=True
    )
    assert proc.stdout is not None
    line = first_line_with(proc.stdout, marker, timeout)
    if line is None or "http://" not in line:
        proc.kill()
        sys.exit(f"{cmd!r} did not print {marker!r} within {timeout:.0f} s (log: {log})")
    return proc, line[line.index("http://") :].split()[0]


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU of a whole process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kb(pid: int, field: str = "RssAnon") -> int | None:
    """A ``kB`` field of ``/proc/PID/status`` (``RssAnon``, ``VmRSS``, ...), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_tcp_queues(pid: int) -> list[tuple[int, int]]:
    """``(send queue, receive queue)`` in bytes of each TCP socket that process ``pid``
    holds, as the kernel reports them in ``/proc/PID/net/tcp`` and ``tcp6``: bytes written
    but not yet acknowledged by the peer, and bytes received but not yet read."""
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return []
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    queues = []
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[9] in inodes:
                tx, rx = fields[4].split(":")
                queues.append((int(tx, 16), int(rx, 16)))
    return queues
