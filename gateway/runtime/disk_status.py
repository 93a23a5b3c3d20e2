"""``_system/disk:status``: the data directory's disk-full state, for ``outpost status``.

An internal query (admin callers only, as ``_system/replication:status``) that reads no
table: its answer is the store's ``DiskGuard`` at the moment of the call.
"""

from __future__ import annotations

from typing import Any, Final

from gateway.runtime.functions import RegisteredFunction
from gateway.store.diskfull import DiskGuard

DISK_STATUS_PATH: Final = "_system/disk:status"


def disk_status_function(guard: DiskGuard) -> RegisteredFunction:
    """The query answering ``guard.status()``: full or not, free bytes, the threshold."""

    async def status(ctx: Any, args: dict[str, Any]) -> dict[str, Any]:
        return guard.status()

    return RegisteredFunction("query", "internal", status, {}, path=DISK_STATUS_PATH)
