"""``outpost dev``: a saved change swaps in while the server keeps running; a broken
module is reported with file and line and the last good version keeps serving."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest

OUTPOST = Path(sys.executable).parent / "outpost"

V1 = """
    from gateway import query

    @query
    async def version(ctx, args):
        return "v1"
"""


def _query(url: str, path: str) -> dict:
    body = json.dumps({"path": path, "args": {}, "format": "convex_encoded_json"}).encode()
    request = urllib.request.Request(
        f"{url}/api/query", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _until(check, what: str, timeout_s: float = 15.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_dev_reloads_on_save_and_survives_a_syntax_error(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "convex").mkdir(parents=True)
    module = app / "convex" / "fns.py"
    module.write_text(textwrap.dedent(V1))
    err_path = tmp_path / "dev.err"
    with err_path.open("w") as err:
        proc = subprocess.Popen(
            [OUTPOST, "dev", str(app), "--port", "0", "--data-dir", str(tmp_path / "data")],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")},
        )
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
        line = lines.get(timeout=30)
        assert line.startswith("Outpost listening on http://"), err_path.read_text()
        url = line.split(" on ", 1)[1].strip()
        assert _query(url, "fns:version")["value"] == "v1"

        module.write_text(textwrap.dedent(V1).replace('"v1"', '"v2"'))
        _until(lambda: _query(url, "fns:version")["value"] == "v2", "the reload to v2")

        module.write_text("from gateway import query\n\n@query\nasync def version(ctx, args)\n")
        _until(lambda: "fns.py:4: SyntaxError" in err_path.read_text(), "the error report")
        assert _query(url, "fns:version")["value"] == "v2"  # the last good version serves

        module.write_text(textwrap.dedent(V1).replace('"v1"', '"v3"'))
        _until(lambda: _query(url, "fns:version")["value"] == "v3", "the reload to v3")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in err_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
