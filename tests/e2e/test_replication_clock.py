"""An edge whose wall clock is set back by hours across a restart, replicating into a real
hub (issue 11, section 6): timestamps stay monotonic and the clock-trust marker is carried.

Two ``outpost serve`` processes. The edge writes (the hub down) with the true clock; is
stopped and started again under libfaketime (``LD_PRELOAD``, Debian's ``faketime``,
installed by the test as root) with its clock 5 hours behind, and writes more; then
once more with its clock 3 days ahead (a leap the HLC follows only when the kernel says
NTP synchronised the clock: otherwise those rows are stamped untrusted), and writes
more. Only the wall clock is faked; monotonic time is the real one.

Then the hub comes up and the edge drains. At the hub, in insert (commit) order: the
edge's commit timestamps (provenance ``ts``) never go back and ``_creationTime`` strictly
increases; the rows written behind the clock were stamped by the HLC counting on from
the last timestamp, not by the 5-hour-old wall clock; and each document's provenance
``clockTrusted`` is what the edge's outbox row said (read before the drain), as is the
mark's for the last batch.
"""

from __future__ import annotations

import asyncio
import glob
import json
from pathlib import Path

from debian import ensure_programs
from edge_process_kit import EdgeProcess, add_gateway, free_port, provenance_rows, store_rows
from edge_upstream_kit import eventually, write_app

from gateway import Gateway
from gateway.store.hlc import ntp_synchronised

DRAIN_DEADLINE_S = 60.0
# Writes per phase: single inserts (a commit each) and small batches (a commit each).
SINGLES, MANY, MANY_COUNT = 10, 4, 5
PER_PHASE = SINGLES + MANY * MANY_COUNT
CLOCKS = ["", "-5h", "+3d"]  # FAKETIME offsets of the three phases ("": the true clock)
_TABLE_SQL = (
    "SELECT id, body FROM documents WHERE tbl = (SELECT number FROM tables WHERE name = '{table}')"
)


def _faketime_env(offset: str) -> dict[str, str]:
    """The environment that runs a process with its wall clock shifted by ``offset``."""
    if not offset:
        return {}
    ensure_programs(["faketime"], ["faketime"], "the edge clock test")
    [library] = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    return {"LD_PRELOAD": library, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


async def test_an_edge_clock_set_back_keeps_timestamps_monotonic_and_the_trust_marker(
    tmp_path: Path,
) -> None:
    app = write_app(tmp_path / "app")
    edge_data, hub_data = tmp_path / "edge", tmp_path / "hub"
    async with Gateway.open(app, edge_data) as gw:
        edge_id = gw.store.gateway_id
    (edge_data / "upstream_key").write_text(add_gateway(app, hub_data, edge_id))
    port = free_port()
    hub = EdgeProcess(app, hub_data, "", tmp_path / "hub.log", port=port, hub=True)
    edge = EdgeProcess(app, edge_data, f"http://127.0.0.1:{port}", tmp_path / "edge.log")
    try:
        for phase, offset in enumerate(CLOCKS):
            edge.extra_env = _faketime_env(offset)
            await asyncio.to_thread(edge.start)
            await _write(edge, phase * PER_PHASE)
            assert await asyncio.to_thread(edge.stop) == 0
        outbox = store_rows(edge_data, "SELECT seq, ts, op, doc_id, trusted FROM change_log")
        await asyncio.to_thread(edge.start)  # the true clock again
        await asyncio.to_thread(hub.start)
        await eventually(lambda: _outbox_empty(edge_data), DRAIN_DEADLINE_S)
        assert await asyncio.to_thread(edge.stop) == 0
        assert await asyncio.to_thread(hub.stop) == 0
    except BaseException:
        print(f"edge:\n{edge.tail()}\nhub:\n{hub.tail()}")
        for process in (edge, hub):
            if process.proc is not None:
                await asyncio.to_thread(process.kill9)
        raise
    _check(outbox, hub_data)
    for data in (edge_data, hub_data):
        assert store_rows(data, "PRAGMA integrity_check") == [("ok",)]


async def _write(edge: EdgeProcess, start: int) -> None:
    """``PER_PHASE`` inserts with ``n`` from ``start``, one commit per call."""
    for n in range(start, start + SINGLES):
        await asyncio.to_thread(edge.call, "mutation", "readings:add", {"n": float(n)})
    for first in range(start + SINGLES, start + PER_PHASE, MANY_COUNT):
        args = {"start": first, "count": MANY_COUNT}
        await asyncio.to_thread(edge.call, "mutation", "readings:add_many", args)


def _check(outbox: list[tuple[int, int, str, str, int]], hub_data: Path) -> None:
    assert [op for _, _, op, _, _ in outbox] == ["insert"] * PER_PHASE * len(CLOCKS)
    edge_ts = {doc_id: ts for _, ts, _, doc_id, _ in outbox}
    edge_trusted = {doc_id: bool(trusted) for _, _, _, doc_id, trusted in outbox}
    docs = sorted(_rows(hub_data, "readings"), key=lambda doc: float(doc["n"]))
    assert [int(doc["n"]) for doc in docs] == list(range(PER_PHASE * len(CLOCKS)))
    provenance = {str(row["docId"]): row for row in provenance_rows(hub_data)}
    ts = [int(provenance[str(doc["_id"])]["ts"]) for doc in docs]
    assert ts == [edge_ts[str(doc["_id"])] for doc in docs], "provenance ts is not the edge's"
    assert ts == sorted(ts), "commit timestamps went back"
    creation = [float(doc["_creationTime"]) for doc in docs]
    assert all(a < b for a, b in zip(creation, creation[1:], strict=False)), (
        "_creationTime is not strictly increasing in commit order"
    )
    # Behind the clock the HLC counts on from its last timestamp: nanoseconds, not hours.
    behind = ts[PER_PHASE : 2 * PER_PHASE]
    assert behind[-1] - ts[PER_PHASE - 1] < 1_000_000, "the HLC followed a clock set back"
    trusted = [provenance[str(doc["_id"])]["clockTrusted"] for doc in docs]
    assert trusted == [edge_trusted[str(doc["_id"])] for doc in docs]
    assert all(trusted[: 2 * PER_PHASE]), "a clock behind the HLC is not a leap to distrust"
    # The leap ahead is trusted only when the kernel says NTP synchronised the clock.
    assert trusted[2 * PER_PHASE :] == [ntp_synchronised()] * PER_PHASE
    [mark] = _rows(hub_data, "_replication_marks")
    assert mark["clockTrusted"] == trusted[-1]


def _rows(data: Path, table: str) -> list[dict[str, object]]:
    return [json.loads(body) for _, body in store_rows(data, _TABLE_SQL.format(table=table))]


def _outbox_empty(data: Path) -> bool:
    return store_rows(data, "SELECT count(*) FROM change_log") == [(0,)]
