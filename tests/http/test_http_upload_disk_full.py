"""File uploads on a full disk, and the disk-full state where an operator looks for it.

On a real 8 MiB tmpfs: an upload that meets ENOSPC while its bytes go to disk gets 507
``DiskFull`` (where, what is free, what to do), leaves no file and does not put the store
in the disk-full state; one whose ``Content-Length`` cannot fit is refused before its
body is read. Once writes are refused (the store is full), uploads are refused at once
with the store's text, ``/health/ready`` stays 200 with ``disk: "full"`` and the admin
query behind ``outpost status`` says so; both say ``ok`` again once space returns. A
COMMIT that meets ENOSPC after the file was named takes the file back, and a temporary
file whose last buffered bytes cannot be flushed is removed all the same.
"""

from __future__ import annotations

import errno
import io
import sqlite3
import threading
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tmpfs_kit import eventually, fill, small_tmpfs

from gateway import Gateway, Settings
from gateway.cli.status_text import render
from gateway.http import HttpServer, load_or_create_admin_key
from gateway.runtime.disk_status import DISK_STATUS_PATH
from gateway.runtime.storage import BlobDirectory, PendingBlob

APP = {
    "schema": """
        from gateway import define_schema, define_table, v
        schema = define_schema({"messages": define_table({"body": v.string()})})
    """,
    "messages": """
        from gateway import mutation, v

        @mutation(args={"body": v.string()})
        async def send(ctx, args):
            return await ctx.db.insert("messages", {"body": args["body"]})
    """,
    "files": """
        from gateway import mutation, query

        @mutation
        async def upload_url(ctx, args):
            return await ctx.storage.generate_upload_url()

        @query
        async def stored(ctx, args):
            return await ctx.db.system.query("_storage").collect()
    """,
}
RESERVE = 1024 * 1024
MIB = 1024 * 1024


@dataclass
class Served:
    gateway: Gateway
    session: aiohttp.ClientSession
    data: Path

    async def new_url(self) -> str:
        parts = urllib.parse.urlsplit(await self.gateway.run_mutation("files:upload_url"))
        return f"{parts.path}?{parts.query}"

    async def upload(self, path: str, data: Any) -> tuple[int, dict[str, Any]]:
        async with self.session.post(path, data=data) as resp:
            return resp.status, await resp.json(content_type=None)

    async def send(self, body: str) -> dict[str, Any]:
        request = {"path": "messages:send", "args": {"body": body}}
        async with self.session.post("/api/mutation", json=request) as resp:
            return await resp.json()  # type: ignore[no-any-return]

    async def ready(self) -> dict[str, Any]:
        async with self.session.get("/health/ready") as resp:
            assert resp.status == 200
            return await resp.json()  # type: ignore[no-any-return]

    async def disk_status(self) -> dict[str, Any]:
        """What ``outpost status`` shows, through the admin query it calls."""
        key = load_or_create_admin_key(self.data)
        request = {"path": DISK_STATUS_PATH, "args": {}, "format": "json"}
        headers = {"Authorization": f"Convex {key}"}
        async with self.session.post("/api/query", json=request, headers=headers) as resp:
            answer = await resp.json()
        assert answer["status"] == "success", answer
        return answer["value"]  # type: ignore[no-any-return]

    def files(self) -> list[str]:
        """Every file in the blob directory: placed blobs and temporary uploads."""
        blobs = self.data / "storage"
        return sorted(p.name for p in blobs.iterdir()) if blobs.is_dir() else []


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path, size_mib=8) as mount_point:
        yield mount_point


async def _serve(stack: AsyncExitStack, app: Path, data: Path, **options: Any) -> Served:
    settings = Settings(
        disk_reserve_bytes=RESERVE, disk_check_interval_s=0.1, max_upload_bytes=64 * MIB
    )
    gw = await stack.enter_async_context(Gateway.open(app, data, settings, **options))
    server = await stack.enter_async_context(HttpServer(gw, settings=settings))
    port = await server.start("127.0.0.1", 0)
    session = await stack.enter_async_context(aiohttp.ClientSession(f"http://127.0.0.1:{port}"))
    return Served(gw, session, data)


@pytest.fixture
async def served(make_app: Any, fs: Path) -> AsyncIterator[Served]:
    async with AsyncExitStack() as stack:
        yield await _serve(stack, make_app(**APP), fs / "data")


async def _chunks(total_bytes: int) -> AsyncIterator[bytes]:
    """A body without ``Content-Length``: the size is learnt only by writing it."""
    chunk = b"z" * (256 * 1024)
    for _ in range(total_bytes // len(chunk)):
        yield chunk


async def test_an_upload_that_meets_enospc_gets_507_and_leaves_no_file(served: Served) -> None:
    path = await served.new_url()
    status, body = await served.upload(path, _chunks(16 * MIB))
    assert (status, body["code"]) == (507, "DiskFull"), body
    message = body["message"]
    assert "no room for the file" in message and str(served.data) in message
    assert "was not stored" in message and "MiB free" in message
    assert served.files() == []  # the partial file is gone
    assert await served.gateway.run_query("files:stored") == []
    # The upload's own ENOSPC leaves the store alone: writes go on.
    assert not served.gateway.store.disk.full
    assert (await served.send("after the upload"))["status"] == "success"
    assert (await served.ready())["disk"] == "ok"
    # The failed upload released its token: the same URL takes a file that fits.
    status, body = await served.upload(path, b"fits")
    assert status == 200, body
    assert served.files() == [body["storageId"]]


async def test_a_declared_size_that_cannot_fit_is_refused_before_reading(
    served: Served,
) -> None:
    body_bytes = io.BytesIO(b"d" * (7 * MIB))  # aiohttp warns about large raw bytes
    status, body = await served.upload(await served.new_url(), body_bytes)
    assert (status, body["code"]) == (507, "DiskFull"), body
    assert "no room for the file of 7.0 MiB" in body["message"]
    assert served.files() == []
    assert not served.gateway.store.disk.full


async def test_while_the_store_is_full_uploads_are_refused_and_status_says_full(
    served: Served, fs: Path
) -> None:
    assert (await served.ready()) == {"status": "ready", "disk": "ok"}
    path = await served.new_url()
    filler = fill(fs)
    for n in range(2000):  # the WAL may have room left after its last reset
        if (await served.send(f"{'x' * 4000} {n}"))["status"] == "error":
            break
    assert served.gateway.store.disk.full, "the disk never filled"

    status, body = await served.upload(path, b"small")
    assert (status, body["code"]) == (507, "DiskFull"), body
    assert "is full" in body["message"] and "the file was not stored" in body["message"]
    assert served.files() == []
    # Still ready: reads are served and a restart frees nothing; the state is visible.
    assert (await served.ready()) == {"status": "ready", "disk": "full"}
    disk = await served.disk_status()
    assert disk["full"] is True and disk["directory"] == str(served.data)
    assert disk["resumeAboveBytes"] == RESERVE + 1024 * 1024
    text = render({"disk": disk})
    assert text.startswith("disk      FULL: writes are refused") and str(served.data) in text

    filler.unlink()

    async def writable() -> bool:
        return (await served.ready())["disk"] == "ok"

    await eventually(writable, "readiness says disk ok once space returned")
    assert (await served.disk_status())["full"] is False
    assert render({"disk": await served.disk_status()}).startswith("disk      ok, ")
    status, body = await served.upload(path, b"small")
    assert status == 200, body


async def test_a_commit_that_meets_enospc_takes_the_named_file_back(
    make_app: Any, tmp_path: Path
) -> None:
    failing = threading.Event()  # set: the next COMMIT meets a full disk

    def commit(conn: sqlite3.Connection) -> None:
        if failing.is_set():
            failing.clear()
            raise OSError(errno.ENOSPC, "No space left on device")
        conn.execute("COMMIT")

    async with AsyncExitStack() as stack:
        served = await _serve(stack, make_app(**APP), tmp_path / "data", commit_fn=commit)
        path = await served.new_url()
        failing.set()
        status, body = await served.upload(path, b"named, then not committed")
        assert (status, body["code"]) == (507, "DiskFull"), body
        assert "is full" in body["message"]
        assert served.files() == []  # placed under its id, then taken back
        assert await served.gateway.run_query("files:stored") == []

        async def accepted() -> bool:
            return not served.gateway.store.disk.full

        await eventually(accepted, "the disk-full state left (there is room)")
        status, body = await served.upload(path, b"again")
        assert status == 200, body
        assert served.files() == [body["storageId"]]


def test_a_pending_file_whose_last_bytes_cannot_be_flushed_is_still_removed(fs: Path) -> None:
    blobs = BlobDirectory(fs / "storage")
    pending = PendingBlob(blobs)
    fill(fs)
    pending.write(b"q" * 100)  # buffered: the disk says no only when it is flushed
    with pytest.raises(OSError) as full:
        pending.seal()
    assert full.value.errno == errno.ENOSPC
    pending.discard()  # closing flushes again, and fails again: the file goes anyway
    assert list(blobs.root.iterdir()) == []
