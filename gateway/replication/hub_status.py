"""``_system/replication:gateways``: what a hub knows of each edge gateway (admin only),
and ``_system/replication:provenance``: where one replicated document came from.

One row per registered gateway, and per gateway that has pushed (a removed one keeps
its marks): its latest epoch, the seq applied in it, when its last batch came and how
long ago (``lagMs``), whether its clock was trusted then, its schema digest, and whether
it is still registered. An edge that sends a batch's optional ``newest`` (``batch.py``)
also shows ``newest`` and ``behind``: how many seqs it still had to send after that
batch, as it said then (the live figure is the edge's own ``outpost status``).
"""

from __future__ import annotations

from typing import Any, Final

from gateway.replication import hub_tables
from gateway.replication.credentials import KeyRing
from gateway.replication.hub_tables import MARKS_TABLE
from gateway.runtime.functions import RegisteredFunction
from gateway.schema import v

STATUS_PATH: Final = "_system/replication:gateways"
PROVENANCE_PATH: Final = "_system/replication:provenance"


def status_function(keys: KeyRing) -> RegisteredFunction:
    """The internal query listing gateways (found only by admin callers)."""

    async def gateways(ctx: Any, args: dict[str, Any]) -> list[dict[str, Any]]:
        marks = await ctx.db.system.query(MARKS_TABLE).collect()
        return gateway_rows(marks, keys.names(), ctx.now)

    return RegisteredFunction("query", "internal", gateways, {}, path=STATUS_PATH)


def provenance_function() -> RegisteredFunction:
    """The internal query ``{id}`` -> the document's provenance row, or null: its table,
    and the gateway, epoch, seq, edge commit ts and clock trust of the change that
    created it here, and when it arrived (``receivedMs``)."""

    async def provenance(ctx: Any, args: dict[str, Any]) -> dict[str, Any] | None:
        return hub_tables.provenance(ctx._ex.tx, args["id"])  # noqa: SLF001 - not a document

    return RegisteredFunction(
        "query", "internal", provenance, {"id": v.string()}, path=PROVENANCE_PATH
    )


def gateway_rows(
    marks: list[dict[str, Any]], registered: list[str], now_ms: float
) -> list[dict[str, Any]]:
    """Each gateway's latest mark (the one seen last), sorted by name."""
    latest: dict[str, dict[str, Any]] = {}
    for mark in marks:
        seen = latest.get(mark["gateway"])
        if seen is None or mark["lastSeenMs"] >= seen["lastSeenMs"]:
            latest[mark["gateway"]] = mark
    rows = []
    for name in sorted(set(latest) | set(registered)):
        last = latest.get(name)
        row: dict[str, Any] = {"gateway": name, "registered": name in registered}
        if last is not None:
            row |= {
                "epoch": last["epoch"],
                "applied": last["applied"],
                "lastSeenMs": last["lastSeenMs"],
                "lagMs": max(0.0, now_ms - last["lastSeenMs"]),
                "clockTrusted": last["clockTrusted"],
                "schema": last["schema"],
            }
            if "newest" in last:  # edges that report it: its backlog when it last pushed
                row |= {
                    "newest": last["newest"],
                    "behind": max(0.0, last["newest"] - last["applied"]),
                }
        rows.append(row)
    return rows
