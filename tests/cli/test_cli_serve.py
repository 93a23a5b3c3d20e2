"""The daily loop as a user runs it: init -> serve -> run -> data -> SIGTERM.

Every command is the installed ``outpost`` script in its own process; the server
is found through the one line it prints when ready (port 0: an ephemeral port).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

OUTPOST = Path(sys.executable).parent / "outpost"
GREENHOUSE = Path(__file__).resolve().parents[2] / "examples" / "greenhouse"
# The greenhouse app has MQTT routes; these tests are not about the broker (which
# would take port 1883, shared by every test running at once).
NO_BROKER = {"OUTPOST_MQTT_BROKER": "off"}
READY_PREFIX = "Outpost listening on http://"


class Served:
    """A running ``outpost serve`` and the environment the other commands share with it."""

    def __init__(self, app: Path, env: dict[str, str], proc: subprocess.Popen[str]) -> None:
        self.app, self.env, self.proc = app, env, proc
        self.url = ""

    def outpost(self, *args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [OUTPOST, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.app,
            env=self.env,
        )

    def run(self, *args: object) -> subprocess.CompletedProcess[str]:
        """``outpost run ...`` against this server's URL."""
        return self.outpost("run", "--url", self.url, *args)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=30)


def _ready_line(proc: subprocess.Popen[str], deadline_s: float = 30.0) -> str:
    """The first stdout line, read on a thread so the wait has a deadline."""
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=deadline_s)
    except queue.Empty:
        pytest.fail(f"outpost serve printed no ready line in {deadline_s} s")


def _serve(app: Path, tmp_path: Path, *extra: str) -> Iterator[Served]:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg"), **NO_BROKER}
    env.pop("OUTPOST_PORT", None)
    stderr = (tmp_path / "serve.err").open("w")
    proc = subprocess.Popen(
        [OUTPOST, "serve", "--port", "0", *extra],
        cwd=app,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    served = Served(app, env, proc)
    try:
        line = _ready_line(proc)
        assert line.startswith(READY_PREFIX), (line, (tmp_path / "serve.err").read_text())
        served.url = line.strip().removeprefix("Outpost listening on ")
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
        stderr.close()


@pytest.fixture
def scaffolded(tmp_path: Path) -> Iterator[Served]:
    app = tmp_path / "myapp"
    done = subprocess.run([OUTPOST, "init", app], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "outpost serve" in done.stdout
    yield from _serve(app, tmp_path)


def test_init_serve_run_data_and_a_clean_stop(scaffolded: Served, tmp_path: Path) -> None:
    s = scaffolded
    added = s.run("readings:add", '{"device": "d1", "celsius": 21.5}')
    assert added.returncode == 0, added.stderr
    doc_id = json.loads(added.stdout)
    assert "reading from d1: 21.5 C" in added.stderr  # the function's log line

    latest = s.run("readings:latest", '{"device": "d1"}')
    assert latest.returncode == 0, latest.stderr
    [doc] = json.loads(latest.stdout)
    assert doc["_id"] == doc_id and doc["celsius"] == 21.5

    tables = s.outpost("data")
    assert tables.returncode == 0, tables.stderr
    assert tables.stdout.split() == ["readings", "1"]
    listed = s.outpost("data", "readings")
    assert [json.loads(line)["_id"] for line in listed.stdout.splitlines()] == [doc_id]
    # The data directory defaulted to XDG_DATA_HOME/outpost/<app folder name>, with the key.
    assert (tmp_path / "xdg" / "outpost" / "myapp" / "admin_key").is_file()

    port = int(s.url.rsplit(":", 1)[1])
    assert s.stop() == 0
    log = (tmp_path / "serve.err").read_text()
    assert "Traceback" not in log and "stopped" in log
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def test_run_reports_errors_and_data_pages(scaffolded: Served) -> None:
    s = scaffolded
    bad = s.run("readings:add", '{"device": "d1"}')
    assert bad.returncode == 1 and "ArgumentValidationError" in bad.stderr, bad.stderr
    assert bad.stdout == ""
    assert s.run("readings:nope").returncode == 1
    not_json = s.run("readings:add", "{device: d1}")
    assert not_json.returncode == 2 and "not JSON" in not_json.stderr

    ids = [
        json.loads(s.run("readings:add", f'{{"device": "d", "celsius": {c}}}').stdout)
        for c in (1, 2, 3)
    ]
    first = s.outpost("data", "readings", "--limit", "2", "--order", "asc")
    assert [json.loads(x)["_id"] for x in first.stdout.splitlines()] == ids[:2]
    hint = first.stderr.strip()
    assert hint == f"more: outpost data readings --after {ids[1]} --limit 2 --order asc"
    rest = s.outpost(*hint.removeprefix("more: outpost ").split())
    assert [json.loads(x)["_id"] for x in rest.stdout.splitlines()] == ids[2:]
    assert rest.stderr == ""
    newest = s.outpost("data", "readings", "--limit", "1")
    assert json.loads(newest.stdout)["_id"] == ids[2]
    missing = s.outpost("data", "nope")
    assert missing.returncode == 1 and "no table 'nope' (tables: readings)" in missing.stderr
    assert s.stop() == 0


@pytest.fixture
def greenhouse(tmp_path: Path) -> Iterator[Served]:
    yield from _serve(GREENHOUSE, tmp_path, "--data-dir", str(tmp_path / "data"))


def test_run_calls_internal_functions_with_the_local_admin_key(
    greenhouse: Served, tmp_path: Path
) -> None:
    s, data = greenhouse, tmp_path / "data"
    args = '{"device": "d9", "celsius": 40}'
    done = s.run("readings:raise_alert", args, "--data-dir", data)
    assert done.returncode == 0, done.stderr
    assert "alert: d9 at 40.0" in done.stderr
    # Without the key (another data directory) the internal function is refused.
    refused = s.run("readings:raise_alert", args, "--data-dir", tmp_path / "other")
    assert refused.returncode == 1 and refused.stdout == ""
    # ... and the command says where it looked for the key, and what to pass.
    assert f"no admin key in {tmp_path / 'other' / 'admin_key'}" in refused.stderr
    assert "--data-dir" in refused.stderr
    alerts = s.outpost("data", "alerts", "--data-dir", data)
    assert json.loads(alerts.stdout)["device"] == "d9"
    assert s.stop(signal.SIGINT) == 0  # Ctrl-C stops as cleanly as SIGTERM


def test_run_without_a_gateway_and_init_into_a_used_folder(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = subprocess.run(
        [OUTPOST, "run", "x:y", "--port", str(port), "--data-dir", tmp_path],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"no gateway answers at http://127.0.0.1:{port}" in done.stderr
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    done = subprocess.run([OUTPOST, "init", tmp_path / "used"], capture_output=True, text=True)
    assert done.returncode == 1 and "is not empty" in done.stderr
    missing = subprocess.run(
        [OUTPOST, "data", "--data-dir", tmp_path / "none"], capture_output=True, text=True
    )
    assert missing.returncode == 1 and "no store at" in missing.stderr


def test_serve_refuses_a_broken_app_and_a_busy_port(make_app, tmp_path: Path) -> None:
    broken = make_app(bad="def f(:\n    pass\n")
    done = subprocess.run(
        [OUTPOST, "serve", broken, "--port", "0", "--data-dir", tmp_path / "d1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert f"{broken}/convex/bad.py:1: SyntaxError" in done.stderr
    assert "Traceback" not in done.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [OUTPOST, "serve", GREENHOUSE, "--port", str(port), "--data-dir", tmp_path / "d2"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1 and done.stdout == ""
    assert f"outpost: cannot start: http: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
