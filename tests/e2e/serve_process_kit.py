"""One ``outpost serve`` process for the end-to-end tests: start (waiting for its ready
line with a deadline), ``kill -9``, a bounded SIGTERM stop, its log's tail, and calls
through its HTTP API. The MQTT and replication kits add their own settings on top."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

OUTPOST = Path(sys.executable).parent / "outpost"
READY_DEADLINE_S = 30.0
EXIT_DEADLINE_S = 30.0


class ServeProcess:
    """``outpost serve app --data-dir data --port port`` with ``settings`` as
    ``OUTPOST_<NAME>`` variables (every other ``OUTPOST_`` variable removed) and
    ``extra_env`` beside them (``LD_PRELOAD`` of libfaketime for a clock set back)."""

    def __init__(self, app: Path, data: Path, log: Path, *, port: int = 0) -> None:
        self.app, self.data, self.log, self.port = app, data, log, port
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0
        self.url = ""  # the HTTP API of the running process
        self.extra_env: dict[str, str] = {}

    def settings(self) -> dict[str, str]:
        """``OUTPOST_*`` variables of this process (subclasses add theirs)."""
        return {}

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
        env |= self.settings() | self.extra_env
        command = [str(OUTPOST), "serve", str(self.app), "--data-dir", str(self.data)]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [*command, "--port", str(self.port)],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
            )
        self.starts += 1
        line = self._ready_line()
        assert line.startswith("Outpost listening on "), f"no ready line: {line!r}\n{self.tail()}"
        self.url = line.split(" on ", 1)[1].strip()

    def _ready_line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(READY_DEADLINE_S):
                raise AssertionError(f"not ready in {READY_DEADLINE_S} s\n{self.tail()}")
        return self.proc.stdout.readline()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(EXIT_DEADLINE_S)
        self._close()

    def stop(self) -> int:
        """SIGTERM and wait; the exit status (a process that does not stop fails)."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(EXIT_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"outpost serve did not stop on SIGTERM\n{self.tail()}") from None
        self._close()
        return code

    def _close(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def call(self, kind: str, path: str, args: dict[str, Any]) -> Any:
        """One call through the HTTP API; its value (an error fails the test)."""
        return call(self.url, kind, path, args)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def call(url: str, kind: str, path: str, args: dict[str, Any]) -> Any:
    """One call through the HTTP API at ``url``; its value (an error fails the test)."""
    body = json.dumps({"path": path, "args": args, "format": "json"}).encode()
    request = urllib.request.Request(
        f"{url}/api/{kind}", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.loads(response.read())
    assert answer["status"] == "success", answer
    return answer["value"]
