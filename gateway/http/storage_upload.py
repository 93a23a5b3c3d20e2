"""``POST /api/storage/upload?token=...``: the file of an upload URL, streamed to disk.

Convex's flow: a function calls ``ctx.storage.generate_upload_url()``, the client POSTs
the raw bytes there with their ``Content-Type`` and gets ``{"storageId": ...}``, then
passes the id to a mutation. Here:

- The token is claimed before the body is read (one upload per URL at a time) and
  spent only when the ``_storage`` document commits; a failed upload releases it.
- The body goes to a temporary file in pieces (``body_chunks``: the body timeout and
  the shared budget of bytes in flight apply), at most ``max_upload_bytes`` (413 before
  reading when ``Content-Length`` says more). At most ``_BATCH_BYTES`` are held in
  memory, then written on a worker thread.
- Whatever fails (the client leaves, 408, 413, a digest mismatch, the commit) removes
  the temporary file before answering; a crash leaves only it, swept at the next start.
  A commit that fails also removes the file it had already named.
- A full disk is 507 ``DiskFull``, saying where and what is free: at once while the
  store refuses writes (its own text), before reading when ``Content-Length`` would leave
  less than the disk guard's margin, and when writing the file meets ENOSPC. The last
  does not put the store in the disk-full state: the partial file is removed first, and
  with it the room it took (``docs/disk-full.md``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Final

from aiohttp import web

from gateway.errors import CommitError, DiskFullError
from gateway.gateway import Gateway
from gateway.http.errors import RequestError
from gateway.http.state import slot_of
from gateway.http.upload import BodyChunks, body_chunks
from gateway.runtime.storage import PendingBlob, record_upload
from gateway.runtime.upload_tokens import UploadTokenError
from gateway.store.diskfull import DiskGuard
from gateway.store.reserve import free_bytes, is_no_space

# Bytes gathered before one write on a worker thread: big enough that the thread hop
# is cheap per byte, small enough to hold per upload on a Pi.
_BATCH_BYTES: Final = 1 << 20


async def post_upload(request: web.Request) -> web.Response:
    """Store the body as a file; answer ``{"storageId": id}`` as Convex does."""
    gateway = slot_of(request).require()
    tokens = gateway.runtime.blobs.uploads
    token = request.query.get("token", "")
    try:
        tokens.claim(token)
    except UploadTokenError as exc:
        raise RequestError(400, "InvalidUploadToken", str(exc)) from None
    try:
        storage_id = await _receive(request, gateway)
    except BaseException:
        tokens.release(token)
        raise
    tokens.complete(token)
    return web.json_response({"storageId": storage_id})


async def _receive(request: web.Request, gateway: Gateway) -> str:
    content_type = request.headers.get("Content-Type")  # None stays null, as Convex
    expected = _expected_digest(request.headers.get("Digest"))
    max_bytes = gateway.settings.max_upload_bytes
    disk = gateway.store.disk
    _check_room(disk, request.content_length)
    pending = await _open_pending(gateway)
    try:
        try:
            async with body_chunks(request, max_bytes, _too_large) as chunks:
                await _copy(chunks, pending)
            await asyncio.to_thread(pending.seal)
        except OSError as exc:
            if not is_no_space(exc):
                raise
            await asyncio.to_thread(pending.discard)  # first: the message says what is free
            raise _no_room(disk) from None
        if expected is not None and expected != pending.sha256:
            raise RequestError(
                400,
                "DigestMismatch",
                f"the body's sha-256 is {pending.sha256}, not {expected} as its Digest "
                "header says; the file was not stored",
            )
        return await _record(gateway, pending, content_type)
    finally:
        await asyncio.to_thread(pending.discard)


async def _open_pending(gateway: Gateway) -> PendingBlob:
    try:
        return await asyncio.to_thread(PendingBlob, gateway.runtime.blobs)
    except OSError as exc:
        if is_no_space(exc):
            raise _no_room(gateway.store.disk) from None
        raise


async def _record(gateway: Gateway, pending: PendingBlob, content_type: str | None) -> str:
    """Commit the ``_storage`` document; a failed commit takes the placed file back."""
    try:
        storage_id, _ = await gateway.store.write(
            lambda tx: record_upload(tx, pending, tx.ts / 1_000_000, content_type)
        )
    except CommitError as exc:
        await asyncio.to_thread(pending.withdraw)
        if isinstance(exc, DiskFullError):
            raise _refused(exc) from None
        raise
    return storage_id


async def _copy(chunks: BodyChunks, pending: PendingBlob) -> None:
    batch = bytearray()
    try:
        while chunk := await chunks.next():
            batch += chunk
            chunks.hold(len(batch))
            if len(batch) >= _BATCH_BYTES:
                await asyncio.to_thread(pending.write, batch)
                batch.clear()
                chunks.hold(0)
        if batch:
            await asyncio.to_thread(pending.write, batch)
    finally:
        batch.clear()  # freed at once, whoever still holds the object (see upload.py)


def _expected_digest(header: str | None) -> str | None:
    """The base64 SHA-256 of an optional ``Digest: sha-256=<base64>`` header."""
    if header is None:
        return None
    for part in header.split(","):
        algorithm, _, value = part.strip().partition("=")
        if algorithm.lower() == "sha-256":
            try:
                return base64.b64encode(base64.b64decode(value, validate=True)).decode()
            except (binascii.Error, ValueError):
                break
    raise RequestError(
        400, "BadDigest", f"the Digest header must read 'sha-256=<base64>', not {header[:80]!r}"
    )


def _check_room(disk: DiskGuard, declared: int | None) -> None:
    """Refuse before reading: while writes are refused for a full disk, or when the
    declared size would leave less than the guard's margin free (the store's room)."""
    if disk.full:
        raise _refused(disk.refusal())
    if declared is None:
        return
    try:
        free = free_bytes(disk.directory)
    except OSError:
        return  # unknown: the writes will tell
    if declared > free - disk.margin_bytes:
        raise _no_room(disk, declared)


def _refused(exc: DiskFullError) -> RequestError:
    return RequestError(
        507, "DiskFull", f"{exc}; the file was not stored", headers={"Connection": "close"}
    )


def _no_room(disk: DiskGuard, declared: int | None = None) -> RequestError:
    """The upload's own ENOSPC (the store is not in the disk-full state for it: the
    partial file is gone, and with it the bytes it took)."""
    size = "" if declared is None else f" of {declared / 1048576:.1f} MiB"
    free = disk.free_bytes() / 1048576
    return RequestError(
        507,
        "DiskFull",
        f"no room for the file{size}: the disk holding the data directory "
        f"{disk.directory} has {free:.1f} MiB free, of which "
        f"{disk.margin_bytes / 1048576:.1f} MiB stays for the store; the file was not "
        "stored. Delete files on that filesystem (old logs, backups, exports) or upload "
        "a smaller file",
        headers={"Connection": "close"},
    )


def _too_large(limit: int) -> RequestError:
    return RequestError(
        413,
        "PayloadTooLarge",
        f"the file is larger than the upload limit of {limit} bytes (max_upload_bytes); "
        "nothing was stored",
        headers={"Connection": "close"},
    )
