"""What the lifecycle tests share: the gateway's documented start order."""

from __future__ import annotations

# The documented start order (gateway/gateway.py, docs/lifecycle.md).
GATEWAY_STEPS = [
    "app",
    "auth",
    "store",
    "system tables",
    "schema",
    "last good copy",
    "app logs",
    "runtime",
    "stored files",
    "scheduler",
    "live queries",
    "retention",
    "dashboard",
]
