"""The uplink's worker process: its key stays out of sight, it runs at a low priority,
and it never outlives the gateway, however the gateway ends or it ends itself."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from edge_upstream_kit import KEY, FakeUpstream, eventually, write_app

from gateway import Gateway
from gateway.replication.batch import PUSH_PATH
from gateway.replication.client import UpstreamUnavailable
from gateway.replication.uplink import Uplink
from gateway.replication.uplink_worker import NICE
from gateway.replication.worker_link import WorkerSender


def _sender(gw: Gateway, url: str) -> WorkerSender:
    return WorkerSender(
        gw.store.path,
        url,
        path=PUSH_PATH,
        connect_timeout_s=0.5,
        request_timeout_s=5.0,
        replicated=lambda: gw.store.catalog.replication,
    )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.stop()


async def test_the_worker_runs_niced_without_the_key_in_sight_and_stops_with_close(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    async with Gateway.open(write_app(tmp_path / "app"), tmp_path / "d") as gw:
        await gw.run_mutation("readings:add_many", {"start": 0, "count": 30})
        uplink = Uplink(gw.store, _sender(gw, upstream.url), key=KEY, schema=lambda: "s")
        await uplink.start()
        try:
            await eventually(lambda: uplink.acked == 30)
            sender = uplink._sender  # noqa: SLF001 - the worker's pid, for /proc
            assert isinstance(sender, WorkerSender) and sender.pid is not None
            pid = sender.pid
            proc = Path(f"/proc/{pid}")
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
            assert KEY.encode() not in seen
            assert b"gateway.replication.uplink_worker" in seen
            assert int((proc / "stat").read_text().rsplit(")", 1)[1].split()[16]) == NICE
        finally:
            await uplink.close()
        assert not _alive(pid)
        assert [s for _, s in upstream.seqs()] == list(range(1, 31))


async def test_a_worker_killed_mid_drain_is_replaced_and_nothing_is_lost_or_doubled(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.delay_s = 0.02  # the drain lasts long enough to kill the worker inside it
    async with Gateway.open(write_app(tmp_path / "app"), tmp_path / "d") as gw:
        for start in range(0, 5000, 1000):
            await gw.run_mutation("readings:add_many", {"start": start, "count": 1000})
        sender = _sender(gw, upstream.url)
        uplink = Uplink(
            gw.store, sender, key=KEY, schema=lambda: "s", backoff_min_s=0.05, backoff_max_s=0.2
        )
        await uplink.start()
        try:
            killed = []
            for _ in range(2):
                await eventually(lambda: sender.pid is not None and sender.pid not in killed)
                await eventually(lambda: uplink.acked > 0 and len(upstream.batches) > 0)
                pid = sender.pid
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            await eventually(lambda: uplink.acked == 5000, timeout_s=60)
        finally:
            await uplink.close()
    assert [s for _, s in upstream.seqs()] == list(range(1, 5001))


async def test_a_worker_that_cannot_open_the_store_fails_its_calls_as_an_outage(
    tmp_path: Path,
) -> None:
    sender = WorkerSender(
        tmp_path / "missing.sqlite3",
        "http://127.0.0.1:9",
        path=PUSH_PATH,
        connect_timeout_s=0.5,
        request_timeout_s=1.0,
        replicated=dict,
    )
    try:
        with pytest.raises(UpstreamUnavailable, match="worker stopped"):
            await sender.next_cut(0)
    finally:
        await sender.close()
    assert sender.pid is None


_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from gateway.replication.batch import PUSH_PATH
    from gateway.replication.worker_link import WorkerSender

    async def main():
        sender = WorkerSender(sys.argv[1], "http://127.0.0.1:9", path=PUSH_PATH,
            connect_timeout_s=0.5, request_timeout_s=1.0, replicated=dict)
        await sender.next_cut(0)
        print(sender.pid, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


def test_the_worker_dies_with_a_gateway_killed_with_kill_9(tmp_path: Path) -> None:
    async def make_store() -> Path:
        async with Gateway.open(write_app(tmp_path / "app"), tmp_path / "d") as gw:
            return gw.store.path

    db = asyncio.run(make_store())
    repo = Path(__file__).resolve().parents[2]
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db)], stdout=subprocess.PIPE, text=True, cwd=repo
    ) as holder:
        try:
            assert holder.stdout is not None
            worker = int(holder.stdout.readline())
            assert _alive(worker)
        finally:
            holder.kill()
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(worker)
