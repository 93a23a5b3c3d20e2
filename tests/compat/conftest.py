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
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
APP = HERE / "app"
NODE_DIR = HERE / "node"
CONVEX_NPM_VERSION = "1.48.0"
READY = re.compile(r"^Outpost listening on (http://\S+:\d+)$")
START_DEADLINE_S = 30.0
STOP_DEADLINE_S = 15.0
NPM_DEADLINE_S = 300.0
NODE_DEADLINE_S = 120.0


@dataclass
class Server:
    url: str
    admin_key: str
    data_dir: Path
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return "server output:\n" + "".join(self.output[-50:])


def _outpost_command() -> list[str]:
    beside = Path(sys.executable).parent / "outpost"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("outpost")
    if found:
        return [found]
    return [sys.executable, "-m", "gateway.cli"]


def _pump(stream: Any, lines: queue.Queue[str | None], output: list[str]) -> None:
    """Copy the server's output into ``output`` (and the queue) until it closes."""
    for line in stream:
        output.append(line)
        lines.put(line)
    lines.put(None)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("compat-data")
    cmd = [
        *_outpost_command(),
        "serve",
        str(APP),
        "--data-dir",
        str(data_dir),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]
    process = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    output: list[str] = []
    lines: queue.Queue[str | None] = queue.Queue()
    pump = threading.Thread(
        target=_pump, args=(process.stdout, lines, output), name="compat-server-output"
    )
    pump.daemon = True
    pump.start()
    url = None
    deadline = time.monotonic() + START_DEADLINE_S
    try:
        while url is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no 'Outpost listening on ...' line within {START_DEADLINE_S:.0f} s\n"
                    + "".join(output)
                )
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"outpost serve exited ({process.wait()}) before it was ready\n"
                    + "".join(output)
                )
            match = READY.match(line.rstrip("\n"))
            if match:
                url = match.group(1)
        admin_key = (data_dir / "admin_key").read_text().strip()
    except BaseException:
        process.kill()
        process.wait()
        pump.join(timeout=5)
        process.stdout.close()  # type: ignore[union-attr]
        raise
    srv = Server(url, admin_key, data_dir, process, output)
    yield srv
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pump.join(timeout=5)
        process.stdout.close()  # type: ignore[union-attr]
        raise AssertionError(
            f"outpost serve did not stop within {STOP_DEADLINE_S:.0f} s of SIGTERM\n"
            + srv.describe()
        ) from None
    pump.join(timeout=5)
    process.stdout.close()  # type: ignore[union-attr]
    assert code == 0, f"outpost serve exited {code} after SIGTERM\n{srv.describe()}"


# --- npm convex ---------------------------------------------------------------------


def _npm_prefix() -> Path:
    configured = os.environ.get("OUTPOST_COMPAT_NPM_DIR")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "outpost-tests" / f"npm-convex-{CONVEX_NPM_VERSION}"


def _installed_version(prefix: Path) -> str | None:
    try:
        manifest = json.loads((prefix / "node_modules/convex/package.json").read_text())
    except (OSError, ValueError):
        return None
    return str(manifest.get("version"))


@pytest.fixture(scope="session")
def convex_npm() -> Path:
    """A directory whose ``node_modules`` holds npm ``convex`` at the pinned version."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the npm convex client tests (not found)")
    prefix = _npm_prefix()
    if _installed_version(prefix) == CONVEX_NPM_VERSION:
        return prefix
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix.parent / f"{prefix.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be installing it right now
        if _installed_version(prefix) != CONVEX_NPM_VERSION:
            done = subprocess.run(
                [
                    npm,
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--ignore-scripts",
                    "--loglevel=error",
                    "--prefix",
                    str(prefix),
                    f"convex@{CONVEX_NPM_VERSION}",
                ],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=NPM_DEADLINE_S,
            )
            assert done.returncode == 0, (
                f"npm install convex@{CONVEX_NPM_VERSION} failed ({done.returncode}):\n"
                f"{done.stdout}\n{done.stderr}"
            )
    assert _installed_version(prefix) == CONVEX_NPM_VERSION
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
