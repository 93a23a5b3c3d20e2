"""Upload URLs: ``ctx.storage.generate_upload_url()``, then ``POST`` of the bytes to it.

Convex's answer (``{"storageId"}``), single use, expiry, the size limit, and what a
failed or abandoned upload leaves behind: nothing (no blob, no ``_storage`` row, no
temporary file)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import random
import time
import tracemalloc
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway import Gateway, Settings
from gateway.http import HttpServer
from gateway.runtime.upload_tokens import UploadTokens

FILES = """
    from gateway import action, mutation, query, v

    @mutation
    async def upload_url(ctx, args):
        return await ctx.storage.generate_upload_url()

    @action
    async def upload_url_from_action(ctx, args):
        return await ctx.storage.generate_upload_url()

    @query
    async def upload_url_from_query(ctx, args):
        return await ctx.storage.generate_upload_url()

    @query
    async def stored(ctx, args):
        return await ctx.db.system.query("_storage").collect()

    @query(args={"id": v.id("_storage")})
    async def url(ctx, args):
        return await ctx.storage.get_url(args["id"])
"""

LIMIT = 256 * 1024


@dataclass
class Served:
    gateway: Gateway
    session: aiohttp.ClientSession
    port: int
    blob_dir: Path

    async def new_url(self, fn: str = "files:upload_url") -> str:
        """The path and query of a fresh upload URL (the origin is the default site_url)."""
        url = await self.gateway.run_mutation(fn) if "action" not in fn else None
        if url is None:
            url = await self.gateway.run_action(fn)
        parts = urllib.parse.urlsplit(url)
        assert parts.path == "/api/storage/upload", url
        return f"{parts.path}?{parts.query}"

    async def upload(
        self, path: str, data: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        async with self.session.post(path, data=data, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def stored(self) -> list[dict[str, Any]]:
        return await self.gateway.run_query("files:stored")  # type: ignore[no-any-return]

    def files(self) -> list[str]:
        return sorted(p.name for p in self.blob_dir.iterdir()) if self.blob_dir.is_dir() else []


@pytest.fixture
async def served(make_app: Any, tmp_path: Path) -> AsyncIterator[Served]:
    settings = Settings(max_upload_bytes=LIMIT)
    app_dir = make_app(files=FILES)
    async with AsyncExitStack() as stack:
        gw = await stack.enter_async_context(Gateway.open(app_dir, tmp_path / "d", settings))
        server = await stack.enter_async_context(HttpServer(gw, settings=settings))
        port = await server.start("127.0.0.1", 0)
        session = await stack.enter_async_context(aiohttp.ClientSession(f"http://127.0.0.1:{port}"))
        yield Served(gw, session, port, tmp_path / "d" / "storage")


async def test_upload_answers_storage_id_and_get_url_serves_it(served: Served) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 100
    status, body = await served.upload(await served.new_url(), data, {"Content-Type": "image/png"})
    assert status == 200, body
    assert list(body) == ["storageId"]
    sid = body["storageId"]
    [doc] = await served.stored()
    assert doc["_id"] == sid
    assert doc["size"] == float(len(data))
    assert doc["contentType"] == "image/png"
    assert doc["sha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    url = await served.gateway.run_query("files:url", {"id": sid})
    async with served.session.get(urllib.parse.urlsplit(url).path) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "image/png"
        assert resp.headers["Digest"] == f"sha-256={doc['sha256']}"
        assert resp.headers["Vary"] == "Origin"
        assert await resp.read() == data
    async with served.session.get(
        urllib.parse.urlsplit(url).path, headers={"Range": "bytes=0-7"}
    ) as resp:
        assert resp.status == 206  # one Range, as Convex serves files
        assert await resp.read() == data[:8]
    assert served.files() == [sid]  # no temporary file left


async def test_upload_url_from_an_action_and_no_content_type(served: Served) -> None:
    path = await served.new_url("files:upload_url_from_action")
    async with served.session.post(path, data=b"raw", skip_auto_headers=["Content-Type"]) as resp:
        assert resp.status == 200
        sid = (await resp.json())["storageId"]
    [doc] = await served.stored()
    assert doc["_id"] == sid
    assert doc["contentType"] is None  # as Convex: no header, null


async def test_a_url_stores_one_file_only(served: Served) -> None:
    path = await served.new_url()
    assert (await served.upload(path, b"first"))[0] == 200
    status, body = await served.upload(path, b"second")
    assert status == 400
    assert body["code"] == "InvalidUploadToken"
    assert "already used" in body["message"]
    assert len(await served.stored()) == 1


async def test_unknown_missing_and_expired_tokens_are_refused(served: Served) -> None:
    for path in ("/api/storage/upload?token=nope", "/api/storage/upload"):
        status, body = await served.upload(path, b"x")
        assert (status, body["code"]) == (400, "InvalidUploadToken")
        assert "unknown or has expired" in body["message"]
    now = [1000.0]
    served.gateway.runtime.blobs.uploads = UploadTokens(clock=lambda: now[0])
    path = await served.new_url()
    now[0] += 3600.5  # Convex's one hour, and a bit
    status, body = await served.upload(path, b"x")
    assert (status, body["code"]) == (400, "InvalidUploadToken")
    assert await served.stored() == []
    assert served.files() == []


async def test_from_a_query_is_refused_in_convex_words(served: Served) -> None:
    with pytest.raises(Exception) as refused:
        await served.gateway.run_query("files:upload_url_from_query")
    assert (
        "Can't use ctx.storage.generate_upload_url() in queries. "
        "Please consider using a mutation or an action."
    ) in str(refused.value)


async def test_too_large_declared_is_413_before_reading_and_leaves_nothing(
    served: Served,
) -> None:
    path = await served.new_url()
    status, body = await served.upload(path, b"x" * (LIMIT + 1))
    assert (status, body["code"]) == (413, "PayloadTooLarge")
    assert "max_upload_bytes" in body["message"]
    assert await served.stored() == []
    assert served.files() == []
    # The failed upload released its token: the same URL takes a file that fits.
    assert (await served.upload(path, b"x" * LIMIT))[0] == 200


async def test_too_large_chunked_is_cut_and_leaves_nothing(served: Served) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(LIMIT // 1024 + 8):
            yield b"y" * 1024

    status, body = await served.upload(await served.new_url(), chunks())
    assert (status, body["code"]) == (413, "PayloadTooLarge")
    assert await served.stored() == []
    assert served.files() == []


async def test_digest_is_checked(served: Served) -> None:
    data = b"sensor firmware"
    good = base64.b64encode(hashlib.sha256(data).digest()).decode()
    bad = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    path = await served.new_url()
    status, body = await served.upload(path, data, {"Digest": f"sha-256={bad}"})
    assert (status, body["code"]) == (400, "DigestMismatch")
    assert await served.stored() == [] and served.files() == []
    status, body = await served.upload(path, data, {"Digest": f"sha-256={good}"})
    assert status == 200, body


async def wait_for(condition: Callable[[], Awaitable[bool] | bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_an_abandoned_upload_leaves_nothing_and_frees_its_url(served: Served) -> None:
    path = await served.new_url()
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    head = f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n"
    writer.write(head.encode() + b"z" * 50_000)
    await writer.drain()
    await wait_for(lambda: any(name.endswith(".tmp") for name in served.files()))
    writer.close()  # the client goes away mid-body
    await writer.wait_closed()
    await wait_for(lambda: served.files() == [])
    assert await served.stored() == []
    status, _ = await served.upload(path, b"again")  # the URL was released
    assert status == 200


async def test_upload_streams_to_disk(make_app: Any, tmp_path: Path) -> None:
    """An upload of 8 MB holds about one batch (1 MiB) in memory, not the file."""
    size = 8 * 1024 * 1024
    settings = Settings(max_upload_bytes=size)
    async with (
        Gateway.open(make_app(files=FILES), tmp_path / "d", settings) as gw,
        HttpServer(gw, settings=settings) as server,
    ):
        port = await server.start("127.0.0.1", 0)
        url = urllib.parse.urlsplit(await gw.run_mutation("files:upload_url"))

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(size // 65536):
                yield b"s" * 65536

        tracemalloc.start()
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"http://127.0.0.1:{port}{url.path}?{url.query}", data=chunks()) as r,
            ):
                assert r.status == 200, await r.text()
                sid = (await r.json())["storageId"]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert (tmp_path / "d" / "storage" / sid).stat().st_size == size
        assert peak < 4 * 1024 * 1024, f"peak {peak} bytes: the upload was buffered"


async def raw_request(port: int, head: str, body: bytes, close_early: bool) -> int | None:
    """Send ``head`` and ``body`` on a fresh socket; the status, or None if none came."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        if close_early:
            return None
        line = await asyncio.wait_for(reader.readline(), 10)
        return int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else None
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_hostile_uploads_never_fail_the_gateway_or_leave_files(served: Served) -> None:
    """Seeded random abuse of the route: bad tokens, bad digests, lying lengths, clients
    that leave; afterwards every blob has its document and no temporary file is left."""
    rng = random.Random(20261204)
    digests = ["sha-256=", "sha-256=!!!", "md5=abc", "", "sha-256=" + "A" * 44, "x" * 300]
    statuses: dict[int | None, int] = {}
    for _ in range(60):
        token_path = await served.new_url() if rng.random() < 0.8 else "/api/storage/upload?t"
        size = rng.choice([0, 1, 100, 5000, LIMIT, LIMIT + 1])
        declared = size + rng.choice([0, 0, 0, 10, -1]) if size else size
        headers = [f"POST {token_path} HTTP/1.1", "Host: localhost", f"Content-Length: {declared}"]
        if rng.random() < 0.5:
            headers.append(f"Content-Type: {rng.choice(['image/png', '', 'a/b; q=1'])}")
        if rng.random() < 0.3:
            headers.append(f"Digest: {rng.choice(digests)}")
        close_early = declared > size or rng.random() < 0.15
        body = rng.randbytes(size if not close_early else size // 2)
        status = await raw_request(
            served.port, "\r\n".join(headers) + "\r\n\r\n", body, close_early
        )
        statuses[status] = statuses.get(status, 0) + 1
        assert status != 500, statuses
    await wait_for(lambda: not any(n.startswith(".") for n in served.files()))
    ids = {doc["_id"] for doc in await served.stored()}
    assert set(served.files()) == ids, statuses
    assert statuses.get(200, 0) > 5 and statuses.get(413, 0) > 0, statuses


async def test_a_stalled_upload_times_out_and_leaves_nothing(make_app: Any, tmp_path: Path) -> None:
    settings = Settings(request_body_timeout_s=0.3)
    async with (
        Gateway.open(make_app(files=FILES), tmp_path / "d", settings) as gw,
        HttpServer(gw, settings=settings) as server,
    ):
        port = await server.start("127.0.0.1", 0)
        url = urllib.parse.urlsplit(await gw.run_mutation("files:upload_url"))
        path = f"{url.path}?{url.query}"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n".encode()
        )
        writer.write(b"p" * 400)  # then nothing more: a client that stalls
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"request_body_timeout_s" in answer
        blob_dir = tmp_path / "d" / "storage"
        assert [p.name for p in blob_dir.iterdir()] == []
        assert await gw.run_query("files:stored") == []
        gw.runtime.blobs.uploads.claim(url.query.removeprefix("token="))  # released
