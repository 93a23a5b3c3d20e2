"""``outpost serve`` / ``outpost dev`` as a user meets a failed start: one line on
stderr, exit 1, no traceback; and a SIGTERM during a slow start stops it cleanly."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

OUTPOST = Path(sys.executable).parent / "outpost"
GREENHOUSE = Path(__file__).resolve().parents[2] / "examples" / "greenhouse"
# The greenhouse app has MQTT routes; these tests are not about the broker (which
# would take port 1883, shared by every test running at once).
NO_BROKER = {"OUTPOST_MQTT_BROKER": "off"}


def _outpost(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_DATA_HOME": str(cwd / "xdg"), **NO_BROKER}
    env.pop("OUTPOST_PORT", None)
    return subprocess.run(
        [OUTPOST, *map(str, args), "--log-level", "warning"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


@pytest.mark.parametrize("command", ["serve", "dev"])
def test_a_data_dir_that_is_a_file_is_one_line(command: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_text("a file")
    done = _outpost(command, GREENHOUSE, "--port", "0", "--data-dir", data, cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("outpost: cannot start: store: ") and str(data) in line, line


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _outpost(
            "serve", GREENHOUSE, "--port", port, "--data-dir", tmp_path / "d", cwd=tmp_path
        )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"outpost: cannot start: http: cannot listen on 127.0.0.1:{port} (address already in "
        "use); pick another --port or stop the process using it"
    ]


def test_a_broken_module_is_one_line(make_app, tmp_path: Path) -> None:
    app = make_app(fns="from gateway import query\nraise RuntimeError('no sensor table')\n")
    done = _outpost("serve", app, "--port", "0", "--data-dir", tmp_path / "d", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"outpost: cannot start: app: {app}/convex/fns.py:2: RuntimeError: no sensor table"
    ]


# An app whose loading waits for the test: it says it started, then holds the start
# (as a slow store or a long index backfill would) until the test lets it go.
SLOW = """
    import pathlib, time
    here = pathlib.Path(__file__).resolve().parent.parent
    (here / "loading").write_text("")
    deadline = time.monotonic() + 30
    while not (here / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)

    from gateway import query

    @query
    async def ping(ctx, args):
        return "pong"
"""


def _wait_for(path: Path, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear in {timeout_s} s")
        time.sleep(0.01)


def test_sigterm_during_a_slow_start_stops_cleanly(make_app, tmp_path: Path) -> None:
    app = make_app(fns=textwrap.dedent(SLOW))
    data = tmp_path / "data"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg"), **NO_BROKER}
    proc = subprocess.Popen(
        [OUTPOST, "serve", app, "--port", "0", "--data-dir", data],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        _wait_for(app / "loading")
        proc.send_signal(signal.SIGTERM)
        (app / "go").write_text("")  # the app finishes loading; the start sees the stop
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 0, err
    assert out == ""  # never said it was ready
    assert "Traceback" not in err and "stopped before it was ready" in err
    # Nothing holds the data directory: the next start serves.
    (app / "loading").unlink()
    _serves_and_stops(app, data, env)


def _serves_and_stops(app: Path, data: Path, env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        [OUTPOST, "serve", app, "--port", "0", "--data-dir", data],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        lines: queue.Queue[str] = queue.Queue()
        stdout = proc.stdout
        assert stdout is not None
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        assert lines.get(timeout=30).startswith("Outpost listening on http://")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_bug_shows_its_traceback_and_a_setting_exits_2(capsys) -> None:
    from gateway.cli import _start_failed
    from gateway.errors import ConfigError, StartError

    def failed(cause: Exception) -> StartError:
        try:
            try:
                raise cause
            except Exception as exc:
                raise StartError("scheduler", str(exc)) from exc
        except StartError as exc:
            return exc

    assert _start_failed(failed(ZeroDivisionError("division by zero"))) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "ZeroDivisionError" in err
    assert err.splitlines()[-1] == "outpost: cannot start: scheduler: division by zero"
    assert _start_failed(failed(ConfigError("max_connections: must be >= 0"))) == 2
    err = capsys.readouterr().err
    assert err == "outpost: cannot start: scheduler: max_connections: must be >= 0\n"


def test_sigterm_while_the_store_waits_on_a_lock_stops_cleanly(tmp_path: Path) -> None:
    """Another process holds the store's write lock, so the store step waits (up to
    SQLite's busy timeout, on a thread): SIGTERM then stops the start at once."""
    import asyncio
    import sqlite3

    from gateway import Gateway
    from gateway.store.layout import DB_FILENAME

    data = tmp_path / "data"

    async def create() -> None:
        async with Gateway.open(GREENHOUSE, data):
            pass

    asyncio.run(create())
    holder = sqlite3.connect(data / DB_FILENAME, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg"), **NO_BROKER}
    proc = subprocess.Popen(
        [OUTPOST, "serve", GREENHOUSE, "--port", "0", "--data-dir", data, "--log-level", "debug"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = _lines_of(proc)
        _wait_for_line(lines, "gateway: starting store")
        proc.send_signal(signal.SIGTERM)
        _wait_for_line(lines, "stopped before it was ready")
        holder.execute("ROLLBACK")
        holder.close()  # the thread still waiting on the lock ends, then the process
        assert proc.wait(timeout=30) == 0
    finally:
        holder.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.stdout is not None and proc.stdout.read() == ""
    proc.stdout.close()
    _serves_and_stops(GREENHOUSE, data, env)


def _lines_of(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """``proc``'s stderr lines, read on a thread so waits on them have deadlines."""
    lines: queue.Queue[str] = queue.Queue()
    stderr = proc.stderr
    assert stderr is not None

    def pump() -> None:
        for line in stderr:
            lines.put(line)
        stderr.close()

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for_line(lines: queue.Queue[str], text: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    seen = []
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"no line with {text!r} in {timeout_s} s; saw {seen}")
        assert "Traceback" not in line, seen
        seen.append(line)
        if text in line:
            return
