"""Helpers of the hostile-client tests (limits, shutdown, fuzz, churn): a bystander that proves a server still serves, and figures of a
server process read from /proc. Named apart from ``conftest`` so it is imported as a
module of its own, never as a second copy of a conftest."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sync.sync_kit import NOTES, SCHEMA, SyncApi, SyncClient, add

HERE = Path(__file__).resolve().parent
START_DEADLINE_S = 30.0
STOP_DEADLINE_S = 20.0


async def bystander(api: SyncApi, topic: str = "calm") -> SyncClient:
    """A client subscribed to ``notes:count`` on ``topic`` (query id 0), first result in."""
    client = await api.open()
    await client.modify(add(0, "notes:count", {"topic": topic}))
    await client.transition()
    return client


async def still_live(client: SyncClient, topic: str = "calm") -> None:
    """``client`` (from ``bystander``) sees its own new write: the server still serves."""
    before = client.results[0][1]
    await client.call("Mutation", "notes:add", {"topic": topic, "body": "still here"})
    await client.response("MutationResponse")
    assert client.results[0] == ("ok", before + 1)


async def until(condition: Callable[[], bool], what: str, deadline_s: float = 10.0) -> None:
    """Wait (on the loop) until ``condition()`` holds; fail naming ``what`` after the deadline."""
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, f"not within {deadline_s} s: {what}"
        await asyncio.sleep(0.01)


def fd_count(pid: int) -> int:
    """Open file descriptors of process ``pid``."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def socket_count(pid: int) -> int:
    """Open sockets of process ``pid`` (not the pipes to its child processes)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            continue  # closed meanwhile
    return count


def status_kb(pid: int, field: str = "RssAnon") -> int:
    """A ``kB`` field of ``/proc/PID/status``."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")


def raise_fd_limit() -> int:
    """Raise this process's soft open-file limit to the hard one (children inherit it):
    a server and a thousand clients need more than the usual 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Lines:
    """A child process's stdout lines, pumped by a thread, awaited with deadlines."""

    def __init__(self, proc: subprocess.Popen[str], name: str) -> None:
        self.proc = proc
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, name=name, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.seen.append(line)
                self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def next_sync(self, prefix: str, deadline_s: float) -> str:
        """The next line starting with ``prefix`` (blocking: not on a serving loop)."""
        end = time.monotonic() + deadline_s
        while True:
            remaining = end - time.monotonic()
            assert remaining > 0, f"no {prefix!r} line within {deadline_s} s: {self.seen[-5:]}"
            try:
                line = self._queue.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            assert line is not None, f"exited before a {prefix!r} line: {self.seen[-5:]}"
            if line.startswith(prefix):
                return line

    async def next(self, prefix: str, deadline_s: float = 60.0) -> str:
        """The next line starting with ``prefix``, polled so the loop keeps serving."""
        end = time.monotonic() + deadline_s
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                assert time.monotonic() < end, (
                    f"no {prefix!r} line within {deadline_s} s: {self.seen[-5:]}"
                )
                await asyncio.sleep(0.02)
                continue
            assert line is not None, f"exited before a {prefix!r} line: {self.seen[-5:]}"
            if line.startswith(prefix):
                return line


class Swarm:
    """``sync_swarm.py`` in a process of its own (stoppable with SIGSTOP)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "sync_swarm.py"), *args],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines = Lines(self.proc, "swarm-stdout")

    def stop(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def kill(self) -> None:
        """SIGKILL (a stopped process too) and reap. Idempotent."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    async def exited(self, deadline_s: float) -> int:
        """Its exit status, waited for on the loop."""
        await until(lambda: self.proc.poll() is not None, "the swarm process exits", deadline_s)
        return self.proc.wait()


READY = re.compile(r"^Outpost listening on (http://\S+:(\d+))$")


@dataclass
class ServedProcess:
    """An ``outpost serve`` child process: its pid, port and stderr log."""

    proc: subprocess.Popen[str]
    url: str
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def problems(self) -> list[str]:
        """Log lines no client should cause: tracebacks and unexpected errors."""
        text = self.log.read_text(errors="replace")
        words = ("Traceback", "unexpected", "Unhandled", "ERROR", "CRITICAL")
        return [line for line in text.splitlines() if any(w in line for w in words)]


@contextmanager
def outpost_serve(app: Path, data: Path, log: Path) -> Iterator[ServedProcess]:
    """``outpost serve APP`` on an ephemeral loopback port; SIGTERM at the end, which it
    must answer by exiting 0 within ``STOP_DEADLINE_S``."""
    cmd = [sys.executable, "-m", "gateway.cli", "serve", str(app), "--data-dir", str(data)]
    cmd += ["--host", "127.0.0.1", "--port", "0"]
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    lines = Lines(proc, "serve-stdout")
    try:
        match = READY.match(lines.next_sync("Outpost listening on", START_DEADLINE_S))
        assert match is not None
        yield ServedProcess(proc, match.group(1), int(match.group(2)), log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"outpost serve did not stop within {STOP_DEADLINE_S} s") from None
    assert code == 0, f"outpost serve exited {code}: {log.read_text()[-2000:]}"


def write_notes_app(root: Path) -> Path:
    """The sync tests' notes app (``sync.sync_kit``) as a directory under ``root``."""
    convex = root / "app" / "convex"
    convex.mkdir(parents=True)
    (convex / "schema.py").write_text(textwrap.dedent(SCHEMA))
    (convex / "notes.py").write_text(textwrap.dedent(NOTES))
    return root / "app"
