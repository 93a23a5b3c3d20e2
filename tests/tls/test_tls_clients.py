"""``outpost serve`` with ``tls = true`` against the official clients and the CLI.

One server for the module: the compat app over HTTPS with its local CA. The npm
``convex`` clients (``ConvexHttpClient`` over HTTPS, ``ConvexClient`` over WSS) trust it
through ``NODE_EXTRA_CA_CERTS``; without it they are refused. ``outpost run`` and
``outpost status`` verify it with the data directory's CA, and ``outpost tls ca`` prints
the CA they verify with.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from compat.conftest import APP

OUTPOST = Path(sys.executable).parent / "outpost"
NODE_SCRIPT = Path(__file__).resolve().parent / "node" / "tls_clients.mjs"
READY = re.compile(r"^Outpost listening on (\S+)$")
DEADLINE_S = 30.0


@dataclass
class TlsServer:
    url: str
    data: Path
    env: dict[str, str]

    @property
    def ca(self) -> Path:
        return self.data / "tls" / "ca.crt"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    data = tmp_path_factory.mktemp("tls") / "data"
    env = {**os.environ, "OUTPOST_TLS": "true", "OUTPOST_MQTT_BROKER": "off"}
    env["OUTPOST_DISCOVERY"] = "false"
    cmd = [str(OUTPOST), "serve", str(APP), "--port", "0", "--data-dir", str(data)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=DEADLINE_S)
        match = READY.match(line.strip())
        assert match, f"not the ready line: {line!r}"
        yield TlsServer(match.group(1), data, env)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE_S) == 0
        stdout.close()


def _node(payload: dict[str, Any], prefix: Path, ca: Path | None) -> Any:
    env = {**os.environ, "CONVEX_NPM_PREFIX": str(prefix)}
    env.pop("NODE_EXTRA_CA_CERTS", None)
    if ca is not None:
        env["NODE_EXTRA_CA_CERTS"] = str(ca)
    done = subprocess.run(
        ["node", str(NODE_SCRIPT)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_ready_line_says_https(tls_server: TlsServer) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:")


def test_npm_clients_trusting_the_ca_query_mutate_and_subscribe_over_wss(
    tls_server: TlsServer, convex_npm: Path
) -> None:
    batch = f"tls-{uuid.uuid4().hex[:8]}"
    payload = {"url": tls_server.url, "batch": batch, "live": True}
    report = _node(payload, convex_npm, tls_server.ca)
    assert report["http"] == {"before": 0, "id": "string", "after": 1}, report
    live = report["live"]
    assert "failure" not in live, live
    assert live["seen"][:1] == [1] and 2 in live["seen"], live
    assert not [entry for entry in live["logged"] if entry[0] == "error"], live


def test_npm_http_client_without_the_ca_is_refused(tls_server: TlsServer, convex_npm: Path) -> None:
    payload = {"url": tls_server.url, "batch": "no-ca", "live": False}
    report = _node(payload, convex_npm, None)
    assert "certificate" in report["http"].get("failure", ""), report


def test_outpost_run_and_status_verify_the_gateway_with_the_local_ca(
    tls_server: TlsServer,
) -> None:
    flags = ["--data-dir", str(tls_server.data), "--url", tls_server.url]
    run = [str(OUTPOST), "run", "items:count", '{"batch": "cli"}', "--app", str(APP), *flags]
    done = subprocess.run(run, env=tls_server.env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "0.0"), done.stderr
    status = [str(OUTPOST), "status", str(APP), "--json", *flags]
    done = subprocess.run(status, env=tls_server.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["running"] is True


def test_outpost_tls_ca_prints_the_ca_the_clients_trust(tls_server: TlsServer) -> None:
    for where in ([str(tls_server.data)], [str(APP), "--data-dir", str(tls_server.data)]):
        done = subprocess.run(
            [str(OUTPOST), "tls", "ca", *where],
            env=tls_server.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == tls_server.ca.read_text()
        assert "SHA-256" in done.stderr


PIP_CLIENT = """
import json, sys
from convex import ConvexClient

url, batch = sys.argv[1], sys.argv[2]
client = ConvexClient(url)
updates = iter(client.subscribe("items:count", {"batch": batch}))
seen = [next(updates)]
client.mutation("items:add", {"batch": batch, "n": 1})
seen.append(next(updates))
print(json.dumps({"seen": seen, "query": client.query("items:count", {"batch": batch})}))
"""


def test_pypi_convex_client_trusts_the_ca_through_ssl_cert_file(tls_server: TlsServer) -> None:
    """PyPI ``convex`` 0.8.1 (its Rust core) takes extra CAs from ``SSL_CERT_FILE`` only,
    which replaces the system's list for that process."""
    env = {**tls_server.env, "SSL_CERT_FILE": str(tls_server.ca)}
    batch = f"pip-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [sys.executable, "-c", PIP_CLIENT, tls_server.url, batch],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"seen": [0.0, 1.0], "query": 1.0}
