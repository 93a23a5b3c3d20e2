"""Snapshot export -> import keeps ids, creation times, every value type, indexes, files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gateway import Gateway, Int64
from gateway.snapshot import SnapshotError, export_snapshot, import_snapshot
from gateway.store import Store

SCHEMA = """
    from gateway import define_schema, define_table, v

    schema = define_schema({
        "readings": define_table({"device": v.string(), "value": v.any()})
            .index("by_device", ["device"]),
        "devices": define_table({"name": v.string(), "meta": v.any()})
            .index("by_name", ["name"]),
    })
"""

FNS = """
    from gateway import mutation, query

    @mutation
    async def add(ctx, args):
        return await ctx.db.insert(args["table"], args["doc"])

    @mutation
    async def save_file(ctx, args):
        return await ctx.storage.store(args["data"], args.get("type"))

    @query
    async def all(ctx, args):
        return await ctx.db.query(args["table"]).collect()

    @query
    async def by_device(ctx, args):
        return await (ctx.db.query("readings")
                      .with_index("by_device", lambda q: q.eq("device", args["device"]))
                      .collect())

    @query
    async def by_name(ctx, args):
        return await (ctx.db.query("devices")
                      .with_index("by_name", lambda q: q.eq("name", args["name"]))
                      .unique())

    @query
    async def get(ctx, args):
        return await ctx.db.get(args["id"])

    @query
    async def files(ctx, args):
        return await ctx.db.system.query("_storage").collect()

    @mutation
    async def read_file(ctx, args):
        return await ctx.storage.get(args["id"])
"""

VALUES = [
    Int64(2**63 - 1),
    Int64(-(2**63)),
    Int64(0),
    b"\x00bytes\x00with NUL\xff",
    b"",
    -0.0,
    math.nan,
    math.inf,
    -math.inf,
    5.0,
    1e300,
    {"nested": {"deep": [Int64(7), b"\x00", -0.0, {"x": None, "s": "é ✓ $ not a key"}]}},
    [1.5, "two", True, None],
    "plain",
]


def same(a: object, b: object) -> bool:
    """Equal as Convex values: types kept, NaN equal to NaN, -0.0 distinct from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        assert isinstance(b, float)
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


async def fill(gw: Gateway) -> tuple[list[str], list[str]]:
    ids = []
    for n, value in enumerate(VALUES):
        doc = {"device": f"d{n % 3}", "value": value}
        ids.append(await gw.run_mutation("m:add", {"table": "readings", "doc": doc}))
    for name in ("pump", "fan"):
        await gw.run_mutation(
            "m:add", {"table": "devices", "doc": {"name": name, "meta": {"n": Int64(1)}}}
        )
    files = [
        await gw.run_mutation("m:save_file", {"data": b"\x00file one\x00", "type": "text/plain"}),
        await gw.run_mutation("m:save_file", {"data": bytes(range(256)) * 10}),
    ]
    return ids, files


async def test_round_trip_into_a_fresh_data_dir(make_app, tmp_path: Path) -> None:
    app = make_app(schema=SCHEMA, m=FNS)
    zip_path = tmp_path / "snap.zip"
    async with Gateway.open(app, tmp_path / "a") as gw:
        ids, files = await fill(gw)
        before = {t: await gw.run_query("m:all", {"table": t}) for t in ("readings", "devices")}
        file_docs = await gw.run_query("m:files", {})
        result = await export_snapshot(gw, zip_path)
    assert result.tables == {"readings": len(VALUES), "devices": 2, "_storage": 2}
    assert result.files == 2 and result.missing_files == []

    # The CLI's path: a bare store on a new data directory, then the app starts on it.
    async with await Store.open(tmp_path / "b") as store:
        imported = await import_snapshot(store, zip_path)
    assert imported.tables == {"readings": len(VALUES), "devices": 2, "_storage": 2}
    assert imported.files == 2 and imported.skipped_storage == []

    async with Gateway.open(app, tmp_path / "b") as gw:
        for table, docs in before.items():
            after = await gw.run_query("m:all", {"table": table})
            assert [d["_id"] for d in after] == [d["_id"] for d in docs]
            assert [d["_creationTime"] for d in after] == [d["_creationTime"] for d in docs]
            for old, new in zip(docs, after, strict=True):
                assert same(old, new), (old, new)
        for n, doc_id in enumerate(ids):  # ids stay valid: the table numbers are kept
            got = await gw.run_query("m:get", {"id": doc_id})
            assert got is not None and same(got["value"], VALUES[n])
        # indexes are rebuilt by the schema: queries by index work
        d0 = await gw.run_query("m:by_device", {"device": "d0"})
        assert [d["_id"] for d in d0] == [i for n, i in enumerate(ids) if n % 3 == 0]
        assert (await gw.run_query("m:by_name", {"name": "fan"}))["name"] == "fan"
        # stored files: documents and bytes
        assert same(await gw.run_query("m:files", {}), file_docs)
        assert await gw.run_mutation("m:read_file", {"id": files[0]}) == b"\x00file one\x00"
        assert await gw.run_mutation("m:read_file", {"id": files[1]}) == bytes(range(256)) * 10
        # new inserts after the import still work and get new ids
        new_id = await gw.run_mutation(
            "m:add", {"table": "readings", "doc": {"device": "d9", "value": 1.0}}
        )
        assert new_id not in ids


async def test_import_into_a_running_gateway_of_the_same_app(make_app, tmp_path: Path) -> None:
    """Same app, fresh store: the same table numbers, so the import fits; indexes are
    kept up to date by insert_existing."""
    app = make_app(schema=SCHEMA, m=FNS)
    zip_path = tmp_path / "snap.zip"
    async with Gateway.open(app, tmp_path / "a") as gw:
        ids, _ = await fill(gw)
        await export_snapshot(gw, zip_path)
    async with Gateway.open(app, tmp_path / "b") as gw:
        await import_snapshot(gw, zip_path)
        d1 = await gw.run_query("m:by_device", {"device": "d1"})
        assert [d["_id"] for d in d1] == [i for n, i in enumerate(ids) if n % 3 == 1]
        assert (await gw.run_query("m:by_name", {"name": "pump"}))["meta"] == {"n": Int64(1)}
        # again: refused, the tables are not empty
        with pytest.raises(SnapshotError, match="already has 14 documents.*--replace"):
            await import_snapshot(gw, zip_path)
        # --append keeps ids, so the same documents again clash
        with pytest.raises(SnapshotError, match="line 1: a document with _id .* already"):
            await import_snapshot(gw, zip_path, mode="append")
        # --replace empties the ZIP's tables first, then loads them
        extra = await gw.run_mutation(
            "m:add", {"table": "readings", "doc": {"device": "d1", "value": "extra"}}
        )
        result = await import_snapshot(gw, zip_path, mode="replace")
        assert result.replaced == {"readings": 15, "devices": 2, "_storage": 2}
        after = await gw.run_query("m:all", {"table": "readings"})
        assert [d["_id"] for d in after] == ids and extra not in [d["_id"] for d in after]


async def test_append_adds_documents(make_app, tmp_path: Path) -> None:
    app = make_app(schema=SCHEMA, m=FNS)
    zip_path = tmp_path / "snap.zip"
    async with Gateway.open(app, tmp_path / "a") as gw:
        ids, _ = await fill(gw)
        await export_snapshot(gw, zip_path)
    async with Gateway.open(app, tmp_path / "b") as gw:
        mine = await gw.run_mutation(
            "m:add", {"table": "readings", "doc": {"device": "d0", "value": 0.5}}
        )
        await import_snapshot(gw, zip_path, mode="append")
        docs = await gw.run_query("m:all", {"table": "readings"})
        assert sorted(d["_id"] for d in docs) == sorted([*ids, mine])


async def test_export_of_a_data_dir_while_the_gateway_runs(make_app, tmp_path: Path) -> None:
    app = make_app(schema=SCHEMA, m=FNS)
    async with Gateway.open(app, tmp_path / "a") as gw:
        await fill(gw)
        result = await export_snapshot(tmp_path / "a", tmp_path / "snap.zip")
        await gw.run_mutation("m:add", {"table": "devices", "doc": {"name": "x", "meta": None}})
    assert result.tables["readings"] == len(VALUES)
