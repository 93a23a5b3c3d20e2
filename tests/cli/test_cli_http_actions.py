"""``outpost serve`` with ``convex/http.py``: the site's line, an action, a clean stop."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

OUTPOST = Path(sys.executable).parent / "outpost"

HTTP_PY = """\
from aiohttp import web
from gateway import http_action, http_router

http = http_router()


@http.route(path="/echo", method="POST")
@http_action
async def echo(ctx, request):
    print("echoing")
    return web.json_response(await request.json())
"""


def _lines(proc: subprocess.Popen[str], count: int, deadline_s: float = 30.0) -> list[str]:
    """The first ``count`` stdout lines, read on a thread so the wait has a deadline."""
    found: queue.Queue[list[str]] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(
        target=lambda: found.put([stdout.readline() for _ in range(count)]), daemon=True
    ).start()
    try:
        return found.get(timeout=deadline_s)
    except queue.Empty:
        pytest.fail(f"outpost serve printed fewer than {count} lines in {deadline_s} s")


def test_serve_prints_the_site_and_answers_an_action(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "convex").mkdir(parents=True)
    (app / "convex" / "http.py").write_text(HTTP_PY)
    env = {**os.environ, "OUTPOST_SITE_PORT": "0", "OUTPOST_MQTT_BROKER": "off"}
    err = tmp_path / "serve.err"
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            [OUTPOST, "serve", str(app), "--port", "0", "--data-dir", str(tmp_path / "data")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        ready, site = _lines(proc, 2)
        assert ready.startswith("Outpost listening on http://127.0.0.1:"), err.read_text()
        assert site.startswith("Outpost HTTP actions on http://127.0.0.1:"), site
        url = site.split()[-1] + "/echo"
        request = urllib.request.Request(
            url, data=b'{"a": 1}', headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.loads(answer.read()) == {"a": 1}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()
    log = err.read_text()
    assert "POST /echo: [LOG] echoing" in log
    assert "Traceback" not in log
