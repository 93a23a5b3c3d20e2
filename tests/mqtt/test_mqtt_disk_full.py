"""A device's readings while the gateway's disk is full (a real 16 MiB tmpfs under the
data directory, a real Mosquitto): left unacknowledged, never dead-lettered, retried
without spinning, and all stored, once each, when space returns, with no restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bridge_kit import eventually, rig
from mosquitto_kit import session
from tmpfs_kit import fill, small_tmpfs

TOPIC = "sensors/dev-a/temperature"


def _reading(seq: int) -> bytes:
    return json.dumps({"celsius": 20.5, "seq": seq, "boot": 1}).encode()


async def test_readings_wait_for_space_and_then_land_once(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path, size_mib=16, name="data") as data:
        async with rig(tmp_path) as r:
            disk = r.gateway.store.disk
            disk.check_interval_s = 0.1  # the setting's 5 s would only slow the test
            with session(r.port, "dev-a", r.passwords["dev-a"]) as dev:
                for seq in (1, 2, 3):
                    await asyncio.to_thread(dev.publish, TOPIC, _reading(seq))

                async def three() -> bool:
                    return len(await r.readings()) == 3

                await eventually(three, "three readings before the disk fills")
                filler = fill(data)
                seq = 3
                while not disk.full:  # the WAL may have room left after its last reset
                    seq += 1
                    assert seq < 3000, "the disk never filled"
                    await asyncio.to_thread(dev.publish, TOPIC, _reading(seq))
                    await asyncio.sleep(0)  # let the bridge hand it to the writer
                sent = seq

                async def held() -> bool:
                    return r.bridge.pending > 0 and r.bridge.stats.retries > 0

                await eventually(held, "a reading held unacknowledged while the disk is full")
                # No busy retry: while full, one retry per RETRY_MAX_S at most.
                retries, jobs = r.bridge.stats.retries, r.gateway.store.writer.stats.jobs
                assert not await disk.wait_writable(1.0)
                assert r.bridge.stats.retries - retries <= 1
                assert r.gateway.store.writer.stats.jobs == jobs
                assert r.bridge.stats.dead == 0 and await r.dead_letters() == []

                filler.unlink()

                async def all_landed() -> bool:
                    return len(await r.readings()) == sent and r.bridge.pending == 0

                await eventually(all_landed, "every reading stored once space returned")
                seqs = sorted(d["seq"] for d in await r.readings())
                assert seqs == [float(n) for n in range(1, sent + 1)]
                assert await r.dead_letters() == []
                assert not disk.full
                await asyncio.to_thread(dev.publish, TOPIC, _reading(sent + 1))

                async def one_more() -> bool:
                    return len(await r.readings()) == sent + 1

                await eventually(one_more, "a reading after recovery")
