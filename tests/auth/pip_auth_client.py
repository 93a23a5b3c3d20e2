"""The PyPI ``convex`` clients with ``set_auth``, in a child process (the client holds
the GIL while it waits; the test's event loop must keep serving).

``python pip_auth_client.py`` with ``{"url", "good"}`` on stdin; one JSON report on stdout.
"""

from __future__ import annotations

import json
import os
import sys

report_out = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)  # the Rust core prints functions' log lines on stdout

from convex import ConvexClient  # noqa: E402 - after fd 1 is redirected
from convex.http_client import ConvexHttpClient  # noqa: E402


def main() -> None:
    given = json.load(sys.stdin)
    client = ConvexClient(given["url"])
    report = {"anonymous": client.query("who:subject")}
    client.set_auth(given["good"])
    report["subject"] = client.query("who:subject")
    report["mutation"] = client.mutation("who:whoami")
    client.clear_auth()
    report["cleared"] = client.query("who:subject")
    client.set_auth(given["good"])
    report["subscribed"] = next(iter(client.subscribe("who:subject")))
    http = ConvexHttpClient(given["url"])
    http.set_auth(given["good"])
    report["http"] = http.query("who:subject")
    report_out.write(json.dumps(report))
    report_out.flush()


main()
