"""``ctx.storage``: files kept beside the store, described by the ``_storage`` table.

A blob is written (and fsynced) before the document that names it commits, so a
committed ``_storage`` document always has its file. A delete removes the document
only: the file stays until a sweep finds no document for it, so a rolled-back delete
never loses data (Convex's self-hosted backend also keeps deleted blobs on disk).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import os
import secrets
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from gateway.errors import FunctionError
from gateway.runtime.upload_tokens import UploadTokens
from gateway.store import Transaction
from gateway.values import decode_id

if TYPE_CHECKING:
    from gateway.runtime.database import Execution
    from gateway.runtime.runtime import Runtime

STORAGE_TABLE = "_storage"


class BlobDirectory:
    """One file per stored blob, named by its ``_storage`` id, and the upload tokens
    that let a client add one (``uploads``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uploads = UploadTokens()

    def path(self, storage_id: str) -> Path:
        return self.root / storage_id

    def write(self, storage_id: str, data: bytes) -> None:
        self.write_stream(storage_id, io.BytesIO(data))

    def write_stream(self, storage_id: str, src: IO[bytes], *, sync_dir: bool = True) -> None:
        """Copy ``src`` into the blob's file, fsynced (and the directory, unless the
        caller syncs it once after a batch with ``sync_dir()``)."""
        pending = PendingBlob(self)
        try:
            while chunk := src.read(1 << 20):
                pending.write(chunk)
            pending.seal()
            pending.place(storage_id, sync_dir=sync_dir)
        finally:
            pending.discard()

    def sync_dir(self) -> None:
        """Make the directory's entries (new names) durable."""
        dir_fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def read(self, storage_id: str) -> bytes | None:
        try:
            return self.path(storage_id).read_bytes()
        except FileNotFoundError:
            return None

    def sweep(self, live: set[str]) -> int:
        """Remove files no ``_storage`` document names; returns how many."""
        if not self.root.is_dir():
            return 0
        removed = 0
        for entry in self.root.iterdir():
            if entry.name not in live:
                entry.unlink(missing_ok=True)
                removed += 1
        return removed


class PendingBlob:
    """A blob being received: a private temporary file in the blob directory, hashed
    as it grows. Blocking: call from a worker thread. Until ``place`` names it, a crash
    leaves only a temporary file, which the sweep at start removes (no document names
    it); ``discard`` removes it at once and is a no-op once placed."""

    def __init__(self, blobs: BlobDirectory) -> None:
        self._blobs = blobs
        blobs.root.mkdir(mode=0o700, parents=True, exist_ok=True)  # private, as the store
        self._tmp = blobs.root / f".upload-{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        self._file: IO[bytes] = os.fdopen(os.open(self._tmp, flags, 0o600), "wb")
        self._hash = hashlib.sha256()
        self._placed: Path | None = None
        self.size = 0

    @property
    def sha256(self) -> str:
        """The base64 SHA-256 of what was written, as ``_storage`` documents hold it."""
        return base64.b64encode(self._hash.digest()).decode()

    def write(self, data: bytes | bytearray) -> None:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def seal(self) -> None:
        """Make the bytes durable (before any document may name them)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def place(self, storage_id: str, *, sync_dir: bool = True) -> None:
        """Give the sealed file its blob name."""
        placed = self._blobs.path(storage_id)
        os.replace(self._tmp, placed)
        self._placed = placed
        if sync_dir:
            self._blobs.sync_dir()

    def discard(self) -> None:
        """Remove the temporary file (a no-op once placed). Closing flushes what is
        buffered, which fails again on a full disk: those bytes are thrown away anyway,
        and the file must go whatever the close says."""
        with contextlib.suppress(OSError):
            self._file.close()
        if self._placed is None:
            self._tmp.unlink(missing_ok=True)

    def withdraw(self) -> None:
        """Remove the placed file after the commit that would have named it failed
        (``CommitError``: nothing in the batch happened), rather than leave it to the
        sweep at the next start."""
        if self._placed is not None:
            self._placed.unlink(missing_ok=True)
            self._placed = None


def record_upload(
    tx: Transaction, pending: PendingBlob, creation_ms: float, content_type: str | None
) -> str:
    """The ``_storage`` document of a sealed upload, its file named in the same
    transaction (a failed commit leaves a file no document names: swept at start)."""
    doc = {"sha256": pending.sha256, "size": float(pending.size), "contentType": content_type}
    storage_id = tx.insert(STORAGE_TABLE, doc, creation_ms)
    pending.place(storage_id)
    return storage_id


def ensure_storage_table(tx: Transaction) -> None:
    if tx.catalog.table(STORAGE_TABLE) is None:
        tx.create_table(STORAGE_TABLE)


def _metadata_doc(data: bytes, content_type: str | None) -> dict[str, Any]:
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    return {"sha256": digest, "size": float(len(data)), "contentType": content_type}


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise FunctionError(f"ctx.storage.store() takes bytes, got {type(data).__name__}")


def _check_id(tx: Transaction, storage_id: Any) -> dict[str, Any] | None:
    if not isinstance(storage_id, str):
        raise FunctionError(f"a storage id is a string, got {type(storage_id).__name__}")
    try:
        number, _ = decode_id(storage_id)
    except ValueError as exc:
        raise FunctionError(f"{storage_id!r} is not a storage id") from exc
    if tx.catalog.table_name(number) != STORAGE_TABLE:
        raise FunctionError(f"{storage_id!r} is an id of another table, not of _storage")
    return tx.get(storage_id)


def store_in_tx(
    tx: Transaction, blobs: BlobDirectory, creation_ms: float, data: bytes, content_type: str | None
) -> str:
    storage_id = tx.insert(STORAGE_TABLE, _metadata_doc(data, content_type), creation_ms)
    blobs.write(storage_id, data)
    return storage_id


def delete_in_tx(tx: Transaction, storage_id: str) -> None:
    doc = _check_id(tx, storage_id)
    if doc is not None:
        tx.delete(STORAGE_TABLE, doc)


def metadata(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    return {
        "storageId": doc["_id"],
        "sha256": doc["sha256"],
        "size": doc["size"],
        "contentType": doc["contentType"],
    }


class TransactionStorage:
    """``ctx.storage`` of a query (reads) or a mutation (reads and writes)."""

    def __init__(self, runtime: Runtime, ex: Execution, *, writable: bool) -> None:
        self._runtime = runtime
        self._ex = ex
        self._writable = writable

    async def get_url(self, storage_id: str) -> str | None:
        doc = _check_id(self._ex.tx, storage_id)
        return None if doc is None else self._runtime.storage_url(storage_id)

    async def get_metadata(self, storage_id: str) -> dict[str, Any] | None:
        return metadata(_check_id(self._ex.tx, storage_id))

    async def get(self, storage_id: str) -> bytes | None:
        doc = _check_id(self._ex.tx, storage_id)
        return None if doc is None else self._runtime.blobs.read(storage_id)

    async def store(self, data: bytes, content_type: str | None = None) -> str:
        self._require_writable("store")
        blob = _as_bytes(data)
        self._ex.limits.write_document(len(blob))
        return store_in_tx(
            self._ex.tx, self._runtime.blobs, self._ex.creation_time(), blob, content_type
        )

    async def delete(self, storage_id: str) -> None:
        self._require_writable("delete")
        delete_in_tx(self._ex.tx, storage_id)

    async def generate_upload_url(self) -> str:
        """A single-use URL a client POSTs a file to (see ``upload_tokens``)."""
        self._require_writable("generate_upload_url")
        return upload_url(self._runtime)

    def _require_writable(self, op: str) -> None:
        if not self._writable:
            # Convex's wording for a side effect refused in a query.
            raise FunctionError(
                f"Can't use ctx.storage.{op}() in queries. "
                "Please consider using a mutation or an action."
            )


class ActionStorage:
    """``ctx.storage`` of an action: every call is its own transaction."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def store(self, data: bytes, content_type: str | None = None) -> str:
        blob, blobs = _as_bytes(data), self._runtime.blobs
        storage_id, _ = await self._runtime.store.write(
            lambda tx: store_in_tx(tx, blobs, tx.ts / 1_000_000, blob, content_type)
        )
        return storage_id

    async def get(self, storage_id: str) -> bytes | None:
        doc, _ = await self._runtime.store.read(lambda tx: _check_id(tx, storage_id))
        if doc is None:
            return None
        return await asyncio.to_thread(self._runtime.blobs.read, storage_id)

    async def get_metadata(self, storage_id: str) -> dict[str, Any] | None:
        doc, _ = await self._runtime.store.read(lambda tx: _check_id(tx, storage_id))
        return metadata(doc)

    async def get_url(self, storage_id: str) -> str | None:
        doc, _ = await self._runtime.store.read(lambda tx: _check_id(tx, storage_id))
        return None if doc is None else self._runtime.storage_url(storage_id)

    async def delete(self, storage_id: str) -> None:
        await self._runtime.store.write(lambda tx: delete_in_tx(tx, storage_id))

    async def generate_upload_url(self) -> str:
        """A single-use URL a client POSTs a file to (see ``upload_tokens``)."""
        return upload_url(self._runtime)


def upload_url(runtime: Runtime) -> str:
    """Convex's shape: ``<origin>/api/storage/upload?token=...``."""
    return f"{runtime.site_url}/api/storage/upload?token={runtime.blobs.uploads.issue()}"


def live_ids(tx: Transaction) -> set[str]:
    info = tx.catalog.table(STORAGE_TABLE)
    if info is None:
        return set()
    rows = tx.conn.execute("SELECT id FROM documents WHERE tbl = ?", (info.number,))
    return {row[0] for row in rows}
