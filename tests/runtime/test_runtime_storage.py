"""``ctx.storage``: blobs beside the store, ``_storage`` documents, atomic with mutations."""

from __future__ import annotations

import base64
import hashlib

from gateway import Gateway

FNS = """
    from gateway import mutation, action, query, ConvexError

    @mutation
    async def save(ctx, args):
        storage_id = await ctx.storage.store(args["data"], "text/plain")
        if args.get("fail"):
            raise ConvexError("no")
        return storage_id

    @action
    async def save_from_action(ctx, args):
        storage_id = await ctx.storage.store(args["data"])
        return [storage_id, await ctx.storage.get(storage_id), await ctx.storage.get_url(storage_id)]

    @query
    async def info(ctx, args):
        return [await ctx.storage.get_metadata(args["id"]), await ctx.db.system.get(args["id"]),
                await ctx.storage.get_url(args["id"])]

    @query
    async def all(ctx, args):
        return await ctx.db.system.query("_storage").collect()

    @mutation
    async def remove(ctx, args):
        await ctx.storage.delete(args["id"])
        if args.get("fail"):
            raise ConvexError("undo")

    @mutation
    async def read(ctx, args):
        return await ctx.storage.get(args["id"])

    @query
    async def store_in_query(ctx, args):
        return await ctx.storage.store(b"x")
"""


async def test_store_read_describe_delete(make_app, tmp_path) -> None:
    data = b"\x00temperature log\xff" * 100
    async with Gateway.open(make_app(files=FNS), tmp_path / "d") as gw:
        sid = await gw.run_mutation("files:save", {"data": data})
        meta, doc, url = await gw.run_query("files:info", {"id": sid})
        assert meta == {
            "storageId": sid,
            "sha256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
            "size": float(len(data)),
            "contentType": "text/plain",
        }
        assert doc["_id"] == sid and doc["size"] == float(len(data))
        assert url.endswith(f"/api/storage/{sid}")
        assert await gw.run_mutation("files:read", {"id": sid}) == data
        assert (tmp_path / "d" / "storage" / sid).read_bytes() == data
        # A rolled-back delete keeps the document and the file.
        assert not (await gw.call("mutation", "files:remove", {"id": sid, "fail": True})).ok
        assert await gw.run_mutation("files:read", {"id": sid}) == data
        await gw.run_mutation("files:remove", {"id": sid})
        assert await gw.run_query("files:info", {"id": sid}) == [None, None, None]
        refused = await gw.call("query", "files:store_in_query")
        assert "Can't use ctx.storage.store() in queries" in refused.error_message
    # The next start sweeps the file no document names.
    async with Gateway.open(make_app(files=FNS), tmp_path / "d"):
        assert not (tmp_path / "d" / "storage" / sid).exists()


async def test_a_failed_mutation_stores_nothing(make_app, tmp_path) -> None:
    async with Gateway.open(make_app(files=FNS), tmp_path / "d") as gw:
        assert not (await gw.call("mutation", "files:save", {"data": b"x", "fail": True})).ok
        assert await gw.run_query("files:all") == []
        sid, data, url = await gw.run_action("files:save_from_action", {"data": b"abc"})
        assert data == b"abc" and sid in url
        assert [d["_id"] for d in await gw.run_query("files:all")] == [sid]
