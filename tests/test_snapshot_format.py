"""The ZIP an export writes: Convex's entry names, export_json lines."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import zipfile
from pathlib import Path

from gateway import Int64
from gateway.runtime.storage import BlobDirectory, store_in_tx
from gateway.snapshot import encode_export_json, export_snapshot
from gateway.store import Store
from gateway.values import decode_id


async def test_entries_and_lines(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "d") as store:
        blobs = BlobDirectory(tmp_path / "d" / "storage")

        def fill(tx):  # type: ignore[no-untyped-def]
            tx.create_table("readings")
            tx.create_table("empty")
            tx.create_table("_storage")
            ids = [
                tx.insert("readings", {"i": Int64(2**63 - 1), "f": 5.0, "s": "x"}, 1000.5),
                tx.insert("readings", {"n": math.nan, "z": -0.0, "b": b"\x00\x01"}, 1001.0),
            ]
            sid = store_in_tx(tx, blobs, 1002.0, b"\x00blob", "application/octet-stream")
            return ids, sid

        (ids, sid), _ = await store.write(fill)
        catalog = store.catalog
        result = await export_snapshot(store, tmp_path / "out.zip")
    assert result.tables == {"readings": 2, "empty": 0, "_storage": 1}

    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        names = set(zf.namelist())
        assert names == {
            "README.md",
            "_tables/documents.jsonl",
            "readings/documents.jsonl",
            "readings/generated_schema.jsonl",
            "empty/documents.jsonl",
            "empty/generated_schema.jsonl",
            "_storage/documents.jsonl",
            f"_storage/{sid}",
        }
        tables = [json.loads(line) for line in zf.read("_tables/documents.jsonl").splitlines()]
        assert tables == [
            {"name": "readings", "id": catalog.by_name["readings"].number},
            {"name": "empty", "id": catalog.by_name["empty"].number},
        ]
        assert zf.read("readings/generated_schema.jsonl") == b'"uniform"\n'
        assert zf.read("empty/documents.jsonl") == b""
        raw = zf.read("readings/documents.jsonl").decode()
        lines = raw.splitlines()
        assert raw.endswith("\n") and len(lines) == 2
        # Int64 is a JSON integer, a finite float has its dot
        assert '"i":9223372036854775807' in lines[0] and '"f":5.0' in lines[0]
        first, second = (json.loads(line) for line in lines)
        assert first == {
            "_id": ids[0],
            "_creationTime": 1000.5,
            "i": 9223372036854775807,
            "f": 5.0,
            "s": "x",
        }
        nan = base64.b64encode(struct.pack("<d", math.nan)).decode()
        assert second["n"] == {"$float": nan}
        assert second["z"] == {"$float": base64.b64encode(struct.pack("<d", -0.0)).decode()}
        assert second["b"] == {"$bytes": base64.b64encode(b"\x00\x01").decode()}
        assert decode_id(first["_id"])[0] == catalog.by_name["readings"].number
        (storage_doc,) = [json.loads(x) for x in zf.read("_storage/documents.jsonl").splitlines()]
        assert storage_doc == {
            "_id": sid,
            "_creationTime": 1002.0,
            "sha256": base64.b64encode(hashlib.sha256(b"\x00blob").digest()).decode(),
            "size": 5.0,
            "contentType": "application/octet-stream",
        }
        assert zf.read(f"_storage/{sid}") == b"\x00blob"


def test_encode_export_json() -> None:
    assert encode_export_json(Int64(-(2**63))) == -(2**63)
    assert type(encode_export_json(Int64(3))) is int
    assert encode_export_json(1.0) == 1.0
    assert encode_export_json(math.inf) == {"$float": "AAAAAAAA8H8="}
    assert encode_export_json({"a": [b"", None, True]}) == {"a": [{"$bytes": ""}, None, True]}


async def test_export_refuses_a_missing_store(tmp_path: Path) -> None:
    import pytest

    from gateway.snapshot import SnapshotError

    with pytest.raises(SnapshotError, match="no store at"):
        await export_snapshot(tmp_path / "nothing", tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()
