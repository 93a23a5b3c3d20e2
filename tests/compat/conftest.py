"""The official Convex clients against a real ``outpost serve`` process.

One server for the whole session: ``outpost serve tests/compat/app`` on port 0 with a
temporary data directory, its URL read from the one line it prints when ready, stopped
with SIGTERM at the end (it must exit 0). The npm ``convex`` package is installed by the
tests themselves into a cache directory outside the repository, once per machine.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from debian import ensure_programs

HERE = Path(__file__).resolve().parent
APP = HERE / "app"
NODE_DIR = HERE / "node"
CONVEX_NPM_VERSION = "1.48.0"
READY = re.compile(r"^Outpost listening on (http://\S+:\d+)$")
START_DEADLINE_S = 30.0
STOP_DEADLINE_S = 15.0
NPM_DEADLINE_S = 300.0
INSTALLED_MARKER = ".outpost-installed"
NODE_DEADLINE_S = 120.0


@dataclass
class Server:
    url: str
    admin_key: str
    data_dir: Path
    stdout: list[str]
    stderr_file: Path

    def describe(self) -> str:
        """The server's output so far, for failure messages."""
        try:
            stderr = self.stderr_file.read_text(errors="replace")
        except OSError:
            stderr = ""
        return f"stdout:\n{''.join(self.stdout)}stderr (last lines):\n" + "\n".join(
            stderr.splitlines()[-40:]
        )


def _outpost_command() -> list[str]:
    beside = Path(sys.executable).parent / "outpost"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("outpost")
    if found:
        return [found]
    return [sys.executable, "-m", "gateway.cli"]


def _pump(stream: Any, lines: queue.Queue[str | None], seen: list[str]) -> None:
    """Copy the server's stdout into ``seen`` and the queue until it closes."""
    with stream:
        for line in stream:
            seen.append(line)
            lines.put(line)
    lines.put(None)


def _wait_ready(lines: queue.Queue[str | None], srv: Server) -> str:
    """The URL from the ready line, read with a deadline (never a fixed sleep)."""
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(
                f"no 'Outpost listening on ...' line within {START_DEADLINE_S:.0f} s\n"
                + srv.describe()
            )
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            raise AssertionError("outpost serve exited before it was ready\n" + srv.describe())
        match = READY.match(line.rstrip("\n"))
        if match:
            return match.group(1)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``outpost serve tests/compat/app`` for the session, stopped with SIGTERM."""
    root = tmp_path_factory.mktemp("compat")
    data_dir = root / "data"
    srv = Server("", "", data_dir, [], root / "stderr.log")
    cmd = [*_outpost_command(), "serve", str(APP), "--data-dir", str(data_dir)]
    cmd += ["--host", "127.0.0.1", "--port", "0"]
    with open(srv.stderr_file, "w") as stderr:
        process = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    lines: queue.Queue[str | None] = queue.Queue()
    pump = threading.Thread(
        target=_pump, args=(process.stdout, lines, srv.stdout), name="compat-server-stdout"
    )
    pump.daemon = True
    pump.start()
    try:
        srv.url = _wait_ready(lines, srv)
        srv.admin_key = (data_dir / "admin_key").read_text().strip()
        yield srv
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = None
        pump.join(timeout=5)
    assert code is not None, (
        f"outpost serve did not stop within {STOP_DEADLINE_S:.0f} s of SIGTERM\n{srv.describe()}"
    )
    assert code == 0, f"outpost serve exited {code} after SIGTERM\n{srv.describe()}"
    assert srv.stdout == [f"Outpost listening on {srv.url}\n"], (
        "stdout must hold exactly the ready line\n" + srv.describe()
    )


# --- npm convex ---------------------------------------------------------------------


def _npm_prefix() -> Path:
    """Outside the repository, so fresh clones on one machine share one install."""
    configured = os.environ.get("OUTPOST_COMPAT_NPM_DIR")
    if configured:
        return Path(configured)
    name = f"outpost-tests/npm-convex-{CONVEX_NPM_VERSION}"
    try:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        (cache / name).mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError):  # no usable home directory
        cache = Path(tempfile.gettempdir())
    return cache / name


def _installed(prefix: Path) -> bool:
    """True once an npm install into ``prefix`` finished (the marker is written last)."""
    try:
        return (prefix / INSTALLED_MARKER).read_text() == CONVEX_NPM_VERSION
    except OSError:
        return False


@pytest.fixture(scope="session")
def convex_npm() -> Path:
    """A directory whose ``node_modules`` holds npm ``convex`` at the pinned version."""
    npm = ensure_programs(["node", "npm"], ["nodejs", "npm"], "the npm convex client tests")["npm"]
    prefix = _npm_prefix()
    if _installed(prefix):
        return prefix
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix.parent / f"{prefix.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be installing it right now
        if not _installed(prefix):
            cmd = [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts"]
            cmd += ["--prefer-offline", "--loglevel=error", "--prefix", str(prefix)]
            cmd += [f"convex@{CONVEX_NPM_VERSION}"]
            done = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=NPM_DEADLINE_S,
            )
            assert done.returncode == 0, (
                f"npm install convex@{CONVEX_NPM_VERSION} into {prefix} failed "
                f"({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
            manifest = json.loads((prefix / "node_modules/convex/package.json").read_text())
            assert manifest["version"] == CONVEX_NPM_VERSION, manifest["version"]
            (prefix / INSTALLED_MARKER).write_text(CONVEX_NPM_VERSION)
    return prefix


@pytest.fixture(scope="session")
def node_http_client_report(server: Server, convex_npm: Path) -> Any:
    """What ``node/http_client.mjs`` (npm ConvexHttpClient) saw, scenario by scenario."""
    payload = {"url": server.url, "adminKey": server.admin_key, "run": "npm"}
    return run_node("http_client.mjs", convex_npm, payload)


def run_node(script: str, convex_prefix: Path, payload: dict[str, Any]) -> Any:
    """Run ``tests/compat/node/<script>`` with ``payload`` on stdin; return its JSON."""
    done = subprocess.run(
        ["node", str(NODE_DIR / script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=NODE_DEADLINE_S,
        env={**os.environ, "CONVEX_NPM_PREFIX": str(convex_prefix)},
    )
    assert done.returncode == 0, f"node {script} exited {done.returncode}:\n{done.stderr}"
    return json.loads(done.stdout)
