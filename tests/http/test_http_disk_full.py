"""A full disk for real: the gateway's data directory on an 8 MiB tmpfs, filled until a
write fails. Writes are refused with an error that says why (HTTP API and sync
protocol), reads go on, the file is intact, nothing acknowledged is lost; once the
filler is deleted, writes are accepted again with no restart and the reserve is back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sync.sync_kit import SyncApi
from tmpfs_kit import eventually, fill, small_tmpfs

from gateway import Gateway, Settings
from gateway.http import HttpServer, load_or_create_admin_key
from gateway.metrics import Metric, collect
from gateway.store.reserve import RESERVE_FILENAME

RESERVE = 1024 * 1024
BODY = "x" * 4000  # a few pages per write: the WAL grows fast


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path, size_mib=8) as mount_point:
        yield mount_point


async def _send(session: aiohttp.ClientSession, body: str) -> dict[str, Any]:
    async with session.post(
        "/api/mutation", json={"path": "messages:send", "args": {"body": body}}
    ) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()  # type: ignore[no-any-return]


async def _bodies(session: aiohttp.ClientSession) -> list[str]:
    async with session.post("/api/query", json={"path": "messages:list", "args": {}}) as resp:
        answer = await resp.json()
    assert answer["status"] == "success", answer
    return [doc["body"] for doc in answer["value"]]


def _gauge(gw: Gateway, name: str) -> float:
    return next(m.value for m in collect(gw) if isinstance(m, Metric) and m.name == name)


async def test_a_full_disk_refuses_writes_cleanly_and_recovers_by_itself(
    app_dir: Path, fs: Path
) -> None:
    data = fs / "data"
    settings = Settings(disk_reserve_bytes=RESERVE, disk_check_interval_s=0.1)
    async with Gateway.open(app_dir, data, settings) as gw, HttpServer(gw) as server:
        port = await server.start("127.0.0.1", 0)
        reserve = data / RESERVE_FILENAME
        assert reserve.stat().st_size == RESERVE
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            acknowledged = []
            for n in range(5):
                answer = await _send(session, f"before {n}")
                assert answer["status"] == "success", answer
                acknowledged.append(f"before {n}")
            filler = fill(fs)
            refused: dict[str, Any] | None = None
            for n in range(2000):  # the WAL may have room left after its last reset
                answer = await _send(session, f"{BODY} {n}")
                if answer["status"] == "error":
                    refused = answer
                    break
                acknowledged.append(f"{BODY} {n}")
            assert refused is not None, "the disk never filled"
            message = refused["errorMessage"]
            assert "disk" in message and "is full" in message and str(data) in message
            assert "not applied" in message and "until more than" in message
            assert gw.store.disk.full
            assert not reserve.exists()  # released for SQLite's checkpoint and rollback
            assert _gauge(gw, "outpost_disk_full") == 1.0

            # Refused at once, over HTTP and over the sync protocol, with the same text.
            again = await _send(session, "while full")
            assert again["status"] == "error" and "is full" in again["errorMessage"]
            api = SyncApi(gw, server, session, load_or_create_admin_key(data), port)
            client = await api.open()
            await client.call("Mutation", "messages:send", {"body": "over sync"})
            response = await client.recv_type("MutationResponse")
            assert response["success"] is False
            assert "is full" in response["result"] and str(data) in response["result"]
            await client.close()

            # Reads go on, everything acknowledged is there, the file is intact.
            assert sorted(await _bodies(session)) == sorted(acknowledged)
            check, _ = await gw.store.read(
                lambda tx: tx.conn.execute("PRAGMA integrity_check").fetchall()
            )
            assert check == [("ok",)]

            filler.unlink()

            async def writable() -> bool:
                answer = await _send(session, "after")
                return answer["status"] == "success"

            await eventually(writable, "writes accepted again once space returned")
            assert not gw.store.disk.full
            assert reserve.stat().st_size == RESERVE
            assert _gauge(gw, "outpost_disk_full") == 0.0
            assert _gauge(gw, "outpost_data_dir_free_bytes") > RESERVE
            bodies = await _bodies(session)
            assert set(acknowledged) <= set(bodies) and "after" in bodies
            assert "while full" not in bodies and "over sync" not in bodies
        assert gw.store.disk.entered == 1


async def test_no_room_for_the_reserve_is_a_warning_not_a_failed_start(
    app_dir: Path, fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    filler = fill(fs)
    filler.write_bytes(b"")  # room for a store, not for a 64 MiB reserve
    settings = Settings(disk_reserve_bytes=64 * 1024 * 1024)
    async with Gateway.open(app_dir, fs / f"data-{uuid.uuid4().hex[:6]}", settings) as gw:
        assert not (gw.data_dir / RESERVE_FILENAME).exists()
        assert not (gw.data_dir / f"{RESERVE_FILENAME}.partial").exists()
        assert await gw.run_mutation("messages:send", {"body": "hi"})
    assert any("could not create the disk reserve" in r.getMessage() for r in caplog.records)


async def test_a_gateway_stopped_on_a_full_disk_starts_again_and_recovers(
    app_dir: Path, fs: Path
) -> None:
    data = fs / "data"
    settings = Settings(disk_reserve_bytes=RESERVE, disk_check_interval_s=0.1)
    async with Gateway.open(app_dir, data, settings) as gw:
        await gw.run_mutation("messages:send", {"body": "kept"})
    filler = fill(fs)  # every byte taken, the reserve still held
    async with Gateway.open(app_dir, data, settings) as gw:
        assert not (data / RESERVE_FILENAME).exists()  # given back so SQLite could open
        assert [d["body"] for d in await gw.run_query("messages:list")] == ["kept"]
        filler.unlink()

        async def writable() -> bool:
            result = await gw.call("mutation", "messages:send", {"body": "after"})
            return result.ok

        await eventually(writable, "writes accepted once space returned")

        async def reserve_back() -> bool:
            path = data / RESERVE_FILENAME
            return path.exists() and path.stat().st_size == RESERVE

        await eventually(reserve_back, "the reserve made again once there was room")
        assert not gw.store.disk.full
