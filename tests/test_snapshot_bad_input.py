"""Bad snapshot ZIPs: each gets a clear error and the store stays exactly as it was."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.snapshot import SnapshotError, import_snapshot
from gateway.store import Store
from gateway.values import encode_id

READINGS = 5  # the ZIP's table number for "readings"


def doc_id(table: int, n: int) -> str:
    return encode_id(table, n.to_bytes(16, "big"))


def line(n: int, **extra: Any) -> str:
    return json.dumps({"_id": doc_id(READINGS, n), "_creationTime": 1000.0 + n, **extra})


def make_zip(path: Path, entries: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def good_entries(count: int = 3) -> dict[str, str | bytes]:
    return {
        "_tables/documents.jsonl": json.dumps({"name": "readings", "id": READINGS}) + "\n",
        "readings/documents.jsonl": "".join(line(n, v=n + 0.5) + "\n" for n in range(count)),
    }


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A store with a table 'devices' (number 1) holding one document."""
    async with await Store.open(tmp_path / "data") as s:

        def fill(tx):  # type: ignore[no-untyped-def]
            tx.create_table("devices")
            tx.insert("devices", {"name": "pump"}, 1.0)

        await s.write(fill)
        yield s


def contents(store: Store) -> list[Any]:
    conn = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
    try:
        return [
            conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("tables", "index_defs", "documents", "indexes", "change_log")
        ]
    finally:
        conn.close()


async def refused(store: Store, path: Path, pattern: str, **kwargs: Any) -> None:
    before = contents(store)
    with pytest.raises(SnapshotError, match=pattern):
        await import_snapshot(store, path, **kwargs)
    assert contents(store) == before
    assert not (store.path.parent / "storage").exists() or not os.listdir(
        store.path.parent / "storage"
    )


async def test_a_good_zip_imports(store: Store, tmp_path: Path) -> None:
    result = await import_snapshot(store, make_zip(tmp_path / "ok.zip", good_entries()))
    assert result.tables == {"readings": 3} and result.created == ["readings"]
    assert store.catalog.by_name["readings"].number == READINGS


async def test_not_a_zip(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    path.write_text("hello, not a zip\n")
    await refused(store, path, r"x\.zip is not a ZIP file")
    await refused(store, tmp_path / "missing.zip", "missing.zip: no such file")


async def test_no_tables_entry(store: Store, tmp_path: Path) -> None:
    entries = good_entries()
    del entries["_tables/documents.jsonl"]
    await refused(store, make_zip(tmp_path / "x.zip", entries), "has no _tables/documents.jsonl")


@pytest.mark.parametrize(
    ("bad", "pattern"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "a document must be a JSON object"),
        ('{"_creationTime": 1.0}', "has no _id string"),
        (json.dumps({"_id": "nope", "_creationTime": 1.0}), "not a document id"),
        (
            json.dumps({"_id": doc_id(7, 1), "_creationTime": 1.0}),
            "belongs to table number 7, but this table is number 5",
        ),
        (json.dumps({"_id": doc_id(READINGS, 99)}), "_creationTime must be a positive"),
        (
            json.dumps({"_id": doc_id(READINGS, 99), "_creationTime": 5}),
            "_creationTime must be a positive",  # a JSON integer is an Int64
        ),
        (line(99, big=2**63), "does not fit in an Int64"),
        (line(99, x={"$foo": "1"}), "unknown encoding"),
        (line(99, x={"$bytes": "!!"}), "not valid standard base64"),
        (line(99, _secret=1.0), "reserved for system fields"),
        (line(99, x=float("nan")).replace("NaN", "NaN"), "NaN is not JSON"),
        (line(1), "_id .* appears twice in the ZIP"),
        (b"\xff\xfe", "not valid UTF-8"),
    ],
)
async def test_malformed_line_names_entry_and_line(
    store: Store, tmp_path: Path, bad: str | bytes, pattern: str
) -> None:
    entries = good_entries(300)  # more than one write chunk before the bad line
    body = entries["readings/documents.jsonl"]
    assert isinstance(body, str)
    tail = bad if isinstance(bad, bytes) else bad.encode()
    entries["readings/documents.jsonl"] = body.encode() + tail + b"\n"
    await refused(
        store,
        make_zip(tmp_path / "x.zip", entries),
        rf"readings/documents\.jsonl line 301: .*{pattern}",
    )


@pytest.mark.parametrize(
    ("tables", "pattern"),
    [
        ('{"name": "readings"}', r"_tables/documents\.jsonl line 1: expected"),
        ('{"name": "readings", "id": 0}', "out of range"),
        ('{"name": "_scheduled", "id": 5}', "not a user table name"),
        (
            '{"name": "readings", "id": 5}\n{"name": "other", "id": 5}',
            "listed twice",
        ),
    ],
)
async def test_bad_tables_entry(store: Store, tmp_path: Path, tables: str, pattern: str) -> None:
    entries = good_entries()
    entries["_tables/documents.jsonl"] = tables
    await refused(store, make_zip(tmp_path / "x.zip", entries), pattern)


async def test_documents_of_an_unlisted_table(store: Store, tmp_path: Path) -> None:
    entries = good_entries()
    entries["ghost/documents.jsonl"] = ""
    await refused(store, make_zip(tmp_path / "x.zip", entries), "no line for 'ghost'")


async def test_table_number_clashes(store: Store, tmp_path: Path) -> None:
    # number 1 is 'devices' here
    entries = good_entries()
    entries["_tables/documents.jsonl"] = json.dumps({"name": "readings", "id": 1})
    entries["readings/documents.jsonl"] = json.dumps({"_id": doc_id(1, 1), "_creationTime": 2.0})
    await refused(
        store,
        make_zip(tmp_path / "a.zip", entries),
        "table number 1 is 'readings' in the ZIP but 'devices' in this store.*fresh data dir",
    )
    # 'devices' is number 1 here, 9 in the ZIP
    entries = {
        "_tables/documents.jsonl": json.dumps({"name": "devices", "id": 9}),
        "devices/documents.jsonl": "",
    }
    await refused(
        store,
        make_zip(tmp_path / "b.zip", entries),
        "table 'devices' is number 9 in the ZIP but 1 in this store",
    )


async def test_non_empty_table_refused_by_default(store: Store, tmp_path: Path) -> None:
    entries = {
        "_tables/documents.jsonl": json.dumps({"name": "devices", "id": 1}),
        "devices/documents.jsonl": json.dumps({"_id": doc_id(1, 5), "_creationTime": 2.0}),
    }
    await refused(store, make_zip(tmp_path / "x.zip", entries), "'devices' already has 1 documents")


async def test_stored_files_checked(store: Store, tmp_path: Path) -> None:
    sid = doc_id(40, 1)
    digest = base64.b64encode(hashlib.sha256(b"right").digest()).decode()
    storage_doc = {
        "_id": sid,
        "_creationTime": 3.0,
        "sha256": digest,
        "size": 5.0,
        "contentType": None,
    }
    entries = good_entries()
    entries["_storage/documents.jsonl"] = json.dumps(storage_doc)
    entries[f"_storage/{sid}"] = b"wrong"
    await refused(store, make_zip(tmp_path / "x.zip", entries), "SHA-256 is .* says")
    # a _storage document without its file is skipped (an export without files)
    del entries[f"_storage/{sid}"]
    result = await import_snapshot(store, make_zip(tmp_path / "y.zip", entries))
    assert result.skipped_storage == [sid] and "_storage" not in store.catalog.by_name


async def test_components_refused(store: Store, tmp_path: Path) -> None:
    entries = good_entries()
    entries["_components/auth/_tables/documents.jsonl"] = ""
    await refused(store, make_zip(tmp_path / "x.zip", entries), "components")


async def test_bad_mode(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode is one of"):
        await import_snapshot(store, tmp_path / "x.zip", mode="merge")  # type: ignore[arg-type]
