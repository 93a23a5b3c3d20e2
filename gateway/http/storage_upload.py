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
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Final

from aiohttp import web

from gateway.gateway import Gateway
from gateway.http.errors import RequestError
from gateway.http.state import slot_of
from gateway.http.upload import BodyChunks, body_chunks
from gateway.runtime.storage import PendingBlob, record_upload
from gateway.runtime.upload_tokens import UploadTokenError

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
    pending = await asyncio.to_thread(PendingBlob, gateway.runtime.blobs)
    try:
        async with body_chunks(request, max_bytes, _too_large) as chunks:
            await _copy(chunks, pending)
        await asyncio.to_thread(pending.seal)
        if expected is not None and expected != pending.sha256:
            raise RequestError(
                400,
                "DigestMismatch",
                f"the body's sha-256 is {pending.sha256}, not {expected} as its Digest "
                "header says; the file was not stored",
            )
        storage_id, _ = await gateway.store.write(
            lambda tx: record_upload(tx, pending, tx.ts / 1_000_000, content_type)
        )
        return storage_id
    finally:
        await asyncio.to_thread(pending.discard)


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


def _too_large(limit: int) -> RequestError:
    return RequestError(
        413,
        "PayloadTooLarge",
        f"the file is larger than the upload limit of {limit} bytes (max_upload_bytes); "
        "nothing was stored",
        headers={"Connection": "close"},
    )
