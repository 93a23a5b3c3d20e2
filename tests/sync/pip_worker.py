"""The PyPI ``convex.ConvexClient`` in a child process, driven one call at a time.

``python pip_worker.py <deployment url>``; then one JSON request per stdin line, one JSON
reply per line on the original stdout:

    {"op": "query" | "mutation" | "action", "name": ..., "args": {...}} -> {"value": ...}
    {"op": "subscribe", "name": ..., "args": {...}}                    -> {"value": <sub>}
    {"op": "next_until", "sub": <sub>, "value": v}  -> {"value": [values seen, ending in v]}

A call that raises replies ``{"error": str, "data": ConvexError data or null}``.

Why a process: the client holds the GIL while it blocks in a call or in ``next()``, so a
Python thread next to it (a proxy, a timer) stops until the server answers; a test
that waits on the reply instead can bound every call with a deadline. The client
prints functions' log lines on stdout from its Rust core: fd 1 goes to stderr here,
the replies to a copy of the original stdout.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

replies = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)

from convex import ConvexClient, ConvexError  # noqa: E402 - after fd 1 is redirected


def serve(url: str) -> None:
    client = ConvexClient(url)
    subscriptions: list[Any] = []
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = {"value": handle(client, subscriptions, request)}
        except ConvexError as exc:
            reply = {"error": str(exc), "data": exc.data}
        except Exception as exc:  # noqa: BLE001 - reported to the test
            reply = {"error": f"{type(exc).__name__}: {exc}", "data": None}
        replies.write(json.dumps(reply) + "\n")


def handle(client: ConvexClient, subscriptions: list[Any], request: dict[str, Any]) -> Any:
    op = request["op"]
    if op in ("query", "mutation", "action"):
        return getattr(client, op)(request["name"], request.get("args") or {})
    if op == "subscribe":
        subscription = client.subscribe(request["name"], request.get("args") or {})
        subscriptions.append(iter(subscription))
        return len(subscriptions) - 1
    if op == "next_until":
        updates, seen = subscriptions[request["sub"]], []
        while not seen or seen[-1] != request["value"]:
            seen.append(next(updates))
        return seen
    raise ValueError(f"unknown op {op!r}")


if __name__ == "__main__":
    serve(sys.argv[1])
