"""``GET /api/storage/{id}``: a stored file, as ``ctx.storage.get_url`` points to it."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from gateway.http.errors import RequestError
from gateway.http.state import slot_of
from gateway.runtime.storage import STORAGE_TABLE
from gateway.store import Transaction
from gateway.values import decode_id

# Convex serves stored files as private and cacheable for 30 days: their bytes never
# change (a new upload is a new id).
CACHE_CONTROL: Final = "private, max-age=2592000"
# On every answer, not only CORS ones: an <img> loads the file without an Origin, and
# without Vary the browser reuses that cached answer (no Access-Control-Allow-Origin)
# for a later fetch() of the same URL, which then fails. CORS adds Origin to it.
_VARY: Final = {"Vary": "Origin"}


async def get_stored_file(request: web.Request) -> web.StreamResponse:
    """The blob with its content type, or 404 when no ``_storage`` document names it."""
    gateway = slot_of(request).require()
    storage_id = request.match_info["id"]
    doc, _ = await gateway.store.read(lambda tx: _storage_doc(tx, storage_id))
    if doc is None:
        raise RequestError(404, "NotFound", f"no stored file has the id {storage_id[:40]!r}")
    # A committed _storage document always has its file (the blob is written first).
    content_type = doc.get("contentType") or "application/octet-stream"
    return web.FileResponse(
        gateway.runtime.blobs.path(storage_id),
        headers={
            "Content-Type": content_type,
            "Cache-Control": CACHE_CONTROL,
            "Digest": f"sha-256={doc['sha256']}",  # as Convex sends it (base64)
            **_VARY,
        },
    )


def _storage_doc(tx: Transaction, storage_id: str) -> dict[str, Any] | None:
    try:
        number, _ = decode_id(storage_id)
    except ValueError:
        return None
    if tx.catalog.table_name(number) != STORAGE_TABLE:
        return None
    return tx.get(storage_id)
