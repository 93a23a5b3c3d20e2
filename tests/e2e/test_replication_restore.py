"""A restored backup at the edge, against a real hub (issue 11, section 6): data written
after the restore is not dropped upstream as "already seen".

Two ``outpost serve`` processes. The edge writes and replicates; a backup is taken;
the edge writes more and replicates; the backup is restored and the edge writes new
documents. A store back in time would hand out seqs the hub's mark already covers; the
epoch bumps instead (``gateway/store/epoch.py``), so the new documents start a new mark.

Two kinds of backup:

- ``import``: ``outpost export`` while the edge runs, restored with ``outpost import
  --replace`` (the import bumps the epoch);
- ``directory``: a copy of the stopped edge's data directory put back in its place (the
  store, its outbox and its seq counter back in time; a new inode bumps the epoch at
  open: the hub keeps what the edge wrote between backup and restore).

Either way every document written after the restore is at the hub exactly once, under
the new epoch, and both stores pass ``integrity_check``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from edge_process_kit import EdgeProcess, add_gateway, provenance_rows, store_rows
from edge_upstream_kit import eventually, write_app
from serve_process_kit import OUTPOST

from gateway import Gateway

DRAIN_DEADLINE_S = 60.0
BEFORE, BETWEEN, AFTER = 50, 30, 40  # documents before the backup, after it, after restore
AFTER_START = 1_000  # ``n`` of the documents written after the restore
_TABLE_SQL = (
    "SELECT id, body FROM documents WHERE tbl = (SELECT number FROM tables WHERE name = '{table}')"
)


@pytest.mark.parametrize("backup", ["import", "directory"])
async def test_new_data_after_a_restored_backup_reaches_the_hub(
    tmp_path: Path, backup: str
) -> None:
    app = write_app(tmp_path / "app")
    edge_data, hub_data = tmp_path / "edge", tmp_path / "hub"
    async with Gateway.open(app, edge_data) as gw:
        edge_id = gw.store.gateway_id
    (edge_data / "upstream_key").write_text(add_gateway(app, hub_data, edge_id))
    hub = EdgeProcess(app, hub_data, "", tmp_path / "hub.log", hub=True)
    await asyncio.to_thread(hub.start)
    edge = EdgeProcess(app, edge_data, hub.url, tmp_path / "edge.log")
    saved = tmp_path / ("backup.zip" if backup == "import" else "backup")
    try:
        await asyncio.to_thread(edge.start)
        await _write_and_drain(edge, 0, BEFORE)
        await asyncio.to_thread(_take, backup, edge, saved)
        await _write_and_drain(edge, BEFORE, BETWEEN)
        assert await asyncio.to_thread(edge.stop) == 0
        await asyncio.to_thread(_restore, backup, app, edge_data, saved)
        await asyncio.to_thread(edge.start)
        new_ids = await _write_and_drain(edge, AFTER_START, AFTER)
        assert await asyncio.to_thread(edge.stop) == 0
        assert await asyncio.to_thread(hub.stop) == 0
    except BaseException:
        print(f"edge:\n{edge.tail()}\nhub:\n{hub.tail()}")
        for process in (edge, hub):
            if process.proc is not None:
                await asyncio.to_thread(process.kill9)
        raise
    hub_docs = {str(doc["_id"]): doc for doc in _rows(hub_data, "readings")}
    edge_docs = {str(doc["_id"]): doc for doc in _rows(edge_data, "readings")}
    after = [doc for doc in hub_docs.values() if float(doc["n"]) >= AFTER_START]
    assert sorted(str(doc["_id"]) for doc in after) == sorted(new_ids), "new data was dropped"
    # The hub has the edge's documents, and keeps what the edge wrote between backup and
    # restore (``outpost import`` opens the store without the app's schema, so its
    # clearing and loading of the table are not outbox entries).
    assert {i: hub_docs[i] for i in edge_docs} == edge_docs
    assert len(hub_docs) == BEFORE + BETWEEN + AFTER
    marks = _rows(hub_data, "_replication_marks")
    assert len({mark["epoch"] for mark in marks}) == 2, f"one epoch: {marks}"
    new_epoch = max(float(mark["epoch"]) for mark in marks)
    provenance = {str(row["docId"]): row for row in provenance_rows(hub_data)}
    assert {float(provenance[i]["epoch"]) for i in new_ids} == {new_epoch}
    for data in (edge_data, hub_data):
        assert store_rows(data, "PRAGMA integrity_check") == [("ok",)]


async def _write_and_drain(edge: EdgeProcess, start: int, count: int) -> list[str]:
    """``count`` documents (``n`` from ``start``), replicated (the outbox empty); their ids."""
    before = set(await asyncio.to_thread(edge.call, "query", "readings:ids", {"limit": 10_000}))
    args = {"start": start, "count": count}
    await asyncio.to_thread(edge.call, "mutation", "readings:add_many", args)
    await eventually(lambda: _outbox_empty(edge.data), DRAIN_DEADLINE_S)
    ids = await asyncio.to_thread(edge.call, "query", "readings:ids", {"limit": 10_000})
    return [i for i in ids if i not in before]


def _take(backup: str, edge: EdgeProcess, saved: Path) -> None:
    """``outpost export`` of the running edge, or a copy of its stopped data directory."""
    if backup == "import":
        _outpost("export", str(saved), "--app", str(edge.app), "--data-dir", str(edge.data))
        return
    assert edge.stop() == 0
    shutil.copytree(edge.data, saved)
    edge.start()


def _restore(backup: str, app: Path, edge_data: Path, saved: Path) -> None:
    if backup == "import":
        _outpost("import", str(saved), "--replace", "--app", str(app), "--data-dir", str(edge_data))
        return
    shutil.rmtree(edge_data)
    shutil.copytree(saved, edge_data)


def _outpost(*args: str) -> None:
    done = subprocess.run([str(OUTPOST), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _rows(data: Path, table: str) -> list[dict[str, object]]:
    return [json.loads(body) for _, body in store_rows(data, _TABLE_SQL.format(table=table))]


def _outbox_empty(data: Path) -> bool:
    return store_rows(data, "SELECT count(*) FROM change_log") == [(0,)]
