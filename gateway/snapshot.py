"""Snapshot ZIPs in Convex's layout (convex-semantics 11.2): export and import.

::

    README.md
    _tables/documents.jsonl          {"name": "<table>", "id": <table number>} per user table
    <table>/documents.jsonl          one document per line, export_json, _id/_creationTime kept
    <table>/generated_schema.jsonl   "uniform"
    _storage/documents.jsonl         {"_id", "_creationTime", "sha256", "size", "contentType"}
    _storage/<storage id>            the stored file's bytes

``export_json`` (``crates/value/src/export.rs``): Int64 is a JSON integer, a finite
Float64 a JSON number with a dot or an exponent, NaN, ±inf, -0.0 and bytes are
``{"$float": ...}`` / ``{"$bytes": ...}`` as on the wire. Reading takes ``$integer``
too. ``_storage`` is not a user table, so it has no line in ``_tables``: its table
number is the one inside its documents' ids.

Export reads one read-only snapshot (one SQLite read transaction on its own
connection, in a worker thread) in chunks of ``CHUNK_ROWS`` rows, so a table is
never in memory and a running gateway's writer is never blocked (WAL).

Import is Convex's ``npx convex import`` for ZIPs: ``mode="fail"`` (default) refuses
when a table of the ZIP already has documents, ``"replace"`` first empties the
tables the ZIP has (others are untouched), ``"append"`` adds to them (ids kept, so
an id already present is an error). It runs in two passes:

1. check everything without writing: the ZIP, ``_tables``, every line (JSON, value
   limits, ids of the right table, no id twice: a temporary on-disk SQLite set),
   each stored file's SHA-256; then, in one writer job, table numbers against the
   store's and the target tables' emptiness, and create the missing tables with the
   ZIP's numbers. Bad input therefore leaves the store untouched.
2. write through the writer in jobs of ``CHUNK_ROWS`` documents
   (``Transaction.insert_existing``); a stored file is written (fsynced) before the
   ``_storage`` document naming it commits. A failure here (a full disk) leaves the
   documents written so far; the error says so.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import functools
import hashlib
import json
import math
import os
import sqlite3
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gateway.errors import ConvexValueError, OutpostError
from gateway.runtime.storage import STORAGE_TABLE, BlobDirectory
from gateway.store import BY_CREATION_TIME, Store, Transaction
from gateway.store.catalog import TableInfo, load_catalog
from gateway.store.layout import DB_FILENAME, connect
from gateway.values import (
    DOCUMENT_MAX_DEPTH,
    INT64_MAX,
    INT64_MIN,
    MAX_DOCUMENT_BYTES,
    MAX_TABLE_NUMBER,
    MIN_TABLE_NUMBER,
    Int64,
    check_document_fields,
    convex_size,
    decode_id,
    decode_json,
    loads,
    to_convex,
)

if TYPE_CHECKING:
    from gateway.gateway import Gateway

__all__ = [
    "CHUNK_ROWS",
    "ExportResult",
    "ImportMode",
    "ImportResult",
    "Progress",
    "SnapshotError",
    "encode_export_json",
    "export_snapshot",
    "import_snapshot",
]

CHUNK_ROWS = 256
TABLES_ENTRY = "_tables/documents.jsonl"
DOCUMENTS = "documents.jsonl"
GENERATED_SCHEMA = "generated_schema.jsonl"
BLOB_DIRNAME = "storage"  # beside the store file, as the runtime's BlobDirectory has it
STORAGE_FIELDS = ("_id", "_creationTime", "sha256", "size", "contentType")

ImportMode = Literal["fail", "replace", "append"]
IMPORT_MODES: tuple[ImportMode, ...] = ("fail", "replace", "append")
# progress(table, documents done, documents in the table); export calls it from its
# worker thread, import from the event loop.
Progress = Callable[[str, int, int], None]

README = """\
# Outpost snapshot export

This ZIP has Convex's snapshot export layout and is read by `outpost import FILE.zip`
(and `npx convex import`).

- `_tables/documents.jsonl`: one line per table, `{"name": ..., "id": <table number>}`;
  importing keeps these numbers, so document ids stay valid.
- `<table>/documents.jsonl`: one document per line in the `export_json` format
  (Int64 as a JSON integer, Float64 with a decimal point, NaN/Infinity/-0 and bytes as
  `{"$float": base64}` / `{"$bytes": base64}`), with `_id` and `_creationTime`.
- `_storage/documents.jsonl` and `_storage/<id>`: stored files and their metadata.
"""


class SnapshotError(OutpostError):
    """A snapshot ZIP cannot be written or read, or does not fit the store."""


@dataclass
class ExportResult:
    path: Path
    tables: dict[str, int] = field(default_factory=dict)  # table -> documents
    files: int = 0
    missing_files: list[str] = field(default_factory=list)  # _storage ids with no file


@dataclass
class ImportResult:
    tables: dict[str, int] = field(default_factory=dict)  # table -> documents written
    files: int = 0
    skipped_storage: list[str] = field(default_factory=list)  # _storage docs with no file
    created: list[str] = field(default_factory=list)  # tables the import created
    replaced: dict[str, int] = field(default_factory=dict)  # table -> documents removed


# --- export_json --------------------------------------------------------------------

_pack_f64 = struct.Struct("<d").pack


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def encode_export_json(value: Any) -> Any:
    """``value`` as a JSON-ready structure in Convex's ``export_json`` format."""
    t = type(value)
    if t is Int64:
        return int(value)
    if t is float:
        if math.isfinite(value) and not (value == 0.0 and math.copysign(1.0, value) < 0):
            return value
        return {"$float": _b64(_pack_f64(value))}
    if t is bytes:
        return {"$bytes": _b64(value)}
    if t is dict:
        return {k: encode_export_json(x) for k, x in value.items()}
    if t is list:
        return [encode_export_json(x) for x in value]
    return value  # str, bool, None


_dump = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _export_line(body: str) -> str:
    """A stored document (wire JSON) as an ``export_json`` line (no newline)."""
    if '"$' not in body and "\\u0024" not in body:
        # Nothing $-encoded: wire JSON has no integers and prints every float with a
        # dot or an exponent, so it already is export_json.
        return body
    return str(_dump(encode_export_json(loads(body))))


def _int64(text: str) -> Int64:
    n = int(text)
    if not INT64_MIN <= n <= INT64_MAX:
        raise ConvexValueError(f"the integer {text} does not fit in an Int64")
    return Int64(n)


def _reject_constant(name: str) -> Any:
    raise ConvexValueError(f'{name} is not JSON; NaN and infinities are {{"$float": ...}}')


def _object_hook(d: dict[str, Any]) -> Any:
    if len(d) == 1:
        for k in d:
            if k[:1] == "$":
                return decode_json(d) if k != "$integer" else _dollar_integer(d[k])
        return d
    return decode_json(d) if any(k[:1] == "$" for k in d) else d  # decode_json names it


def _dollar_integer(payload: Any) -> Any:
    # The wire form of an Int64, accepted too; decode_json would see parsed ints.
    if not isinstance(payload, str):
        raise ConvexValueError('{"$integer": ...} must hold a base64 string')
    return decode_json({"$integer": payload})


_decode_line = json.JSONDecoder(
    parse_int=_int64, parse_constant=_reject_constant, object_hook=_object_hook
).decode


def _parse_line(raw: bytes, where: str) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SnapshotError(f"{where}: not valid UTF-8 ({exc.reason})") from None
    try:
        return _decode_line(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    except (ConvexValueError, ValueError, RecursionError) as exc:
        raise SnapshotError(f"{where}: {exc}") from None


# --- export ---------------------------------------------------------------------------


def _locate(source: Any) -> tuple[Path, Path]:
    """(store file, blob directory) of a Gateway, a Store or a data directory."""
    runtime = getattr(source, "runtime", None)
    if runtime is not None:
        return Path(source.store.path), Path(runtime.blobs.root)
    if isinstance(source, Store):
        return source.path, source.path.parent / BLOB_DIRNAME
    data_dir = Path(source)
    return data_dir / DB_FILENAME, data_dir / BLOB_DIRNAME


async def export_snapshot(
    source: Gateway | Store | Path | str,
    path: Path | str,
    *,
    progress: Progress | None = None,
    include_files: bool = True,
) -> ExportResult:
    """Write the store's user tables (and stored files) to a snapshot ZIP at ``path``.

    ``source`` is a running ``Gateway`` or ``Store``, or a data directory (read
    directly, read-only: safe while a gateway runs on it). The ZIP is written to a
    temporary name and renamed into place, so ``path`` is never half written."""
    db_path, blob_root = _locate(source)
    if not db_path.is_file():
        raise SnapshotError(f"no store at {db_path}; nothing to export")
    return await asyncio.to_thread(_export, db_path, blob_root, Path(path), progress, include_files)


def _export(
    db_path: Path, blob_root: Path, path: Path, progress: Progress | None, include_files: bool
) -> ExportResult:
    result = ExportResult(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    conn = connect(db_path, readonly=True)
    try:
        conn.execute("BEGIN")  # one snapshot for every table
        catalog = load_catalog(conn)
        tables = sorted(
            (info for info in catalog.by_name.values() if not info.name.startswith("_")),
            key=lambda info: info.number,
        )
        storage = catalog.table(STORAGE_TABLE)
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("README.md", README)
            zf.writestr(
                TABLES_ENTRY,
                "".join(_dump({"name": t.name, "id": t.number}) + "\n" for t in tables),
            )
            for info in tables:
                result.tables[info.name] = _export_table(conn, zf, info, progress)
                zf.writestr(f"{info.name}/{GENERATED_SCHEMA}", '"uniform"\n')
            if storage is not None:
                result.tables[STORAGE_TABLE] = _export_table(conn, zf, storage, progress)
                if include_files:
                    _export_files(conn, zf, storage, blob_root, result)
        conn.execute("COMMIT")
        os.replace(tmp, path)
    except sqlite3.Error as exc:
        raise SnapshotError(f"cannot read {db_path} ({exc})") from None
    except OSError as exc:
        raise SnapshotError(f"cannot write {path} ({exc})") from None
    finally:
        conn.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return result


def _pages(conn: sqlite3.Connection, info: TableInfo) -> Iterator[list[tuple[str, str]]]:
    """(id, body) of the table in creation order, CHUNK_ROWS rows at a time."""
    index_id = info.indexes[BY_CREATION_TIME].index_id
    cursor = conn.execute(
        "SELECT d.id, d.body FROM indexes i JOIN documents d ON d.id = i.doc_id "
        "WHERE i.index_id = ? ORDER BY i.key",
        (index_id,),
    )
    try:
        while rows := cursor.fetchmany(CHUNK_ROWS):
            yield rows
    finally:
        cursor.close()


def _count(conn: sqlite3.Connection, info: TableInfo) -> int:
    index_id = info.indexes[BY_CREATION_TIME].index_id
    row = conn.execute("SELECT count(*) FROM indexes WHERE index_id = ?", (index_id,)).fetchone()
    return int(row[0])


def _export_table(
    conn: sqlite3.Connection, zf: zipfile.ZipFile, info: TableInfo, progress: Progress | None
) -> int:
    total, done = _count(conn, info), 0
    storage = info.name == STORAGE_TABLE
    with zf.open(f"{info.name}/{DOCUMENTS}", "w", force_zip64=True) as out:
        for rows in _pages(conn, info):
            if storage:
                lines = [_storage_line(body) for _, body in rows]
            else:
                lines = [_export_line(body) for _, body in rows]
            out.write(("\n".join(lines) + "\n").encode("utf-8"))
            done += len(rows)
            if progress is not None:
                progress(info.name, done, max(total, done))
    if progress is not None and done == 0:
        progress(info.name, 0, 0)
    return done


def _storage_line(body: str) -> str:
    doc = loads(body)
    assert isinstance(doc, dict)
    return str(_dump(encode_export_json({k: doc[k] for k in STORAGE_FIELDS if k in doc})))


def _export_files(
    conn: sqlite3.Connection,
    zf: zipfile.ZipFile,
    storage: TableInfo,
    blob_root: Path,
    result: ExportResult,
) -> None:
    for rows in _pages(conn, storage):
        for storage_id, _ in rows:
            blob = blob_root / storage_id
            if not blob.is_file():
                result.missing_files.append(storage_id)
                continue
            zf.write(blob, f"{STORAGE_TABLE}/{storage_id}")  # streamed from the file
            result.files += 1


# --- import: pass 1, checking -----------------------------------------------------------


@dataclass
class _TableSpec:
    name: str
    number: int
    entry: str | None  # "<name>/documents.jsonl", None for a table listed without one
    count: int = 0


@dataclass
class _Plan:
    tables: list[_TableSpec]
    files: dict[str, str]  # storage id -> ZIP entry
    skipped_storage: list[str] = field(default_factory=list)


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise SnapshotError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise SnapshotError(
            f"{path} is not a ZIP file ({exc}); expected a snapshot from `outpost export` "
            "or `npx convex export`"
        ) from None


def _lines(zf: zipfile.ZipFile, entry: str) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of an entry, blank lines skipped."""
    try:
        with zf.open(entry) as stream:
            for n, raw in enumerate(stream, 1):
                line = raw.strip()
                if line:
                    yield n, line
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise SnapshotError(f"{entry} in the ZIP is damaged ({exc})") from None


def _read_tables(zf: zipfile.ZipFile, names: set[str]) -> dict[str, int]:
    if TABLES_ENTRY not in names:
        raise SnapshotError(
            f"the ZIP has no {TABLES_ENTRY}, so its table numbers (and ids) are unknown; "
            "is it a snapshot from `outpost export` or `npx convex export`?"
        )
    tables: dict[str, int] = {}
    numbers: dict[int, str] = {}
    for n, raw in _lines(zf, TABLES_ENTRY):
        where = f"{TABLES_ENTRY} line {n}"
        line = _parse_line(raw, where)
        name = line.get("name") if isinstance(line, dict) else None
        number = line.get("id") if isinstance(line, dict) else None
        if not isinstance(name, str) or type(number) is not Int64:
            raise SnapshotError(f'{where}: expected {{"name": "<table>", "id": <number>}}')
        if not name or "/" in name or (name.startswith("_") and name != STORAGE_TABLE):
            raise SnapshotError(f"{where}: {name!r} is not a user table name")
        if not MIN_TABLE_NUMBER <= number <= MAX_TABLE_NUMBER:
            raise SnapshotError(f"{where}: table number {number} is out of range (1 to 2^32-1)")
        if name in tables or int(number) in numbers:
            raise SnapshotError(f"{where}: table {name!r} or number {number} is listed twice")
        tables[name] = int(number)
        numbers[int(number)] = name
    return tables


def _check_doc(line: Any, number: int | None, where: str) -> dict[str, Any]:
    if not isinstance(line, dict):
        raise SnapshotError(f"{where}: a document must be a JSON object")
    doc_id = line.get("_id")
    if not isinstance(doc_id, str):
        raise SnapshotError(f"{where}: the document has no _id string")
    try:
        id_number, _ = decode_id(doc_id)
    except ConvexValueError as exc:
        raise SnapshotError(f"{where}: {exc}") from None
    if number is not None and id_number != number:
        raise SnapshotError(
            f"{where}: _id {doc_id} belongs to table number {id_number}, but this table is "
            f"number {number} in {TABLES_ENTRY}"
        )
    created = line.get("_creationTime")
    if type(created) is not float or not math.isfinite(created) or created <= 0:
        raise SnapshotError(f"{where}: _creationTime must be a positive finite float")
    try:
        check_document_fields(line)
        doc = to_convex(line, what="document", max_depth=DOCUMENT_MAX_DEPTH)
        assert isinstance(doc, dict)
        size = convex_size(doc)
    except ConvexValueError as exc:
        raise SnapshotError(f"{where}: {exc}") from None
    if size > MAX_DOCUMENT_BYTES:
        raise SnapshotError(f"{where}: the document is {size} bytes; the limit is 1 MiB")
    return doc


def _storage_doc(doc: dict[str, Any], where: str) -> dict[str, Any]:
    out = {k: doc[k] for k in STORAGE_FIELDS if k in doc}
    out.setdefault("contentType", None)
    if not isinstance(out.get("sha256"), str):
        raise SnapshotError(f"{where}: a _storage document needs its sha256 (base64)")
    if type(out.get("size")) not in (float, Int64):
        raise SnapshotError(f"{where}: a _storage document needs its size")
    if out["contentType"] is not None and not isinstance(out["contentType"], str):
        raise SnapshotError(f"{where}: contentType must be a string or null")
    return out


def _storage_files(names: set[str]) -> dict[str, str]:
    prefix = f"{STORAGE_TABLE}/"
    files: dict[str, str] = {}
    for name in names:
        rest = name[len(prefix) :] if name.startswith(prefix) else ""
        if rest and "/" not in rest and rest not in (DOCUMENTS, GENERATED_SCHEMA):
            files[rest.split(".", 1)[0]] = name
    return files


def _documents(zf: zipfile.ZipFile, table: _TableSpec) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, where, checked document) of a table's entry."""
    assert table.entry is not None
    storage = table.name == STORAGE_TABLE
    for n, raw in _lines(zf, table.entry):
        where = f"{table.entry} line {n}"
        doc = _check_doc(_parse_line(raw, where), table.number or None, where)
        if storage:
            doc = _storage_doc(doc, where)
        yield n, where, doc


def _scan(path: Path) -> _Plan:
    """Pass 1: read and check the whole ZIP; nothing is written to the store."""
    with _open_zip(path) as zf:
        names = set(zf.namelist())
        if any(name.startswith("_components/") for name in names):
            raise SnapshotError("the ZIP has components (_components/...), which Outpost lacks")
        numbers = _read_tables(zf, names)
        listed = set(numbers)
        for name in sorted(names):
            table, _, rest = name.partition("/")
            if (
                rest == DOCUMENTS
                and table not in listed
                and table not in (STORAGE_TABLE, "_tables")
            ):
                raise SnapshotError(
                    f"the ZIP has {name} but no line for {table!r} in {TABLES_ENTRY}, so its "
                    "table number is unknown"
                )
        specs = [
            _TableSpec(
                name, number, f"{name}/{DOCUMENTS}" if f"{name}/{DOCUMENTS}" in names else None
            )
            for name, number in numbers.items()
            if name != STORAGE_TABLE
        ]
        files = _storage_files(names)
        plan = _Plan(specs, files)
        storage_entry = f"{STORAGE_TABLE}/{DOCUMENTS}"
        if storage_entry in names:
            plan.tables.append(
                _TableSpec(STORAGE_TABLE, numbers.get(STORAGE_TABLE, 0), storage_entry)
            )
        seen = sqlite3.connect("")  # a private temporary database on disk: the id set
        try:
            seen.execute("CREATE TABLE ids (id TEXT PRIMARY KEY) WITHOUT ROWID")
            for spec in plan.tables:
                if spec.entry is not None:
                    _scan_table(zf, plan, spec, seen)
        finally:
            seen.close()
    return plan


def _scan_table(
    zf: zipfile.ZipFile, plan: _Plan, spec: _TableSpec, seen: sqlite3.Connection
) -> None:
    storage = spec.name == STORAGE_TABLE
    for _, where, doc in _documents(zf, spec):
        doc_id = doc["_id"]
        if storage and spec.number == 0:
            spec.number = decode_id(doc_id)[0]
            if any(t.number == spec.number for t in plan.tables if t is not spec):
                raise SnapshotError(
                    f"{where}: _storage ids have table number {spec.number}, which is another "
                    f"table's in {TABLES_ENTRY}"
                )
        try:
            seen.execute("INSERT INTO ids (id) VALUES (?)", (doc_id,))
        except sqlite3.IntegrityError:
            raise SnapshotError(f"{where}: _id {doc_id} appears twice in the ZIP") from None
        if storage:
            entry = plan.files.get(doc_id)
            if entry is None:
                plan.skipped_storage.append(doc_id)
                continue
            _check_file(zf, entry, doc["sha256"])
        spec.count += 1


def _check_file(zf: zipfile.ZipFile, entry: str, sha256: str) -> None:
    digest = hashlib.sha256()
    try:
        with zf.open(entry) as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise SnapshotError(f"{entry} in the ZIP is damaged ({exc})") from None
    actual = binascii.b2a_base64(digest.digest(), newline=False).decode("ascii")
    if actual != sha256 and digest.hexdigest() != sha256.lower():
        raise SnapshotError(
            f"{entry}: the file's SHA-256 is {actual}, its _storage document says {sha256}"
        )


# --- import: pass 2, writing ------------------------------------------------------------


def _target(target: Any) -> tuple[Store, BlobDirectory]:
    runtime = getattr(target, "runtime", None)
    if runtime is not None:
        return target.store, runtime.blobs  # type: ignore[no-any-return]
    if isinstance(target, Store):
        return target, BlobDirectory(target.path.parent / BLOB_DIRNAME)
    raise TypeError(f"import_snapshot() takes a Gateway or a Store, not {type(target).__name__}")


async def import_snapshot(
    target: Gateway | Store,
    path: Path | str,
    *,
    mode: ImportMode = "fail",
    progress: Progress | None = None,
) -> ImportResult:
    """Load a snapshot ZIP into the store, keeping ``_id``, ``_creationTime`` and table
    numbers. See the module docstring for ``mode`` and what happens on failure."""
    if mode not in IMPORT_MODES:
        raise ValueError(f"mode is one of {', '.join(IMPORT_MODES)}, not {mode!r}")
    store, blobs = _target(target)
    zip_path = Path(path)
    plan = await asyncio.to_thread(_scan, zip_path)
    # Imported data starts a new replication epoch: the store's seqs no longer continue
    # what the upstream saw from it (``gateway.store.epoch``).
    await store.bump_epoch(f"import of {zip_path.name}")
    result = ImportResult(skipped_storage=plan.skipped_storage)
    existing, _ = await store.write(lambda tx: _prepare(tx, plan, mode, result))
    if mode == "replace":
        for name, count in existing.items():
            if count:
                result.replaced[name] = await _clear(store, name)
    zf = await asyncio.to_thread(_open_zip, zip_path)
    try:
        for spec in plan.tables:
            result.tables[spec.name] = await _write_table(
                store, blobs, zf, plan, spec, mode, progress, result
            )
    finally:
        zf.close()
    return result


def _prepare(
    tx: Transaction, plan: _Plan, mode: ImportMode, result: ImportResult
) -> dict[str, int]:
    """Check the ZIP's tables against the store, then create the missing ones.

    Returns each existing target table's document count."""
    problems: list[str] = []
    existing: dict[str, int] = {}
    for spec in plan.tables:
        if spec.entry is None and spec.name == STORAGE_TABLE:
            continue
        if spec.name == STORAGE_TABLE and spec.count == 0:
            continue  # no stored file to import: leave _storage as it is
        info = tx.catalog.table(spec.name)
        holder = tx.catalog.by_number.get(spec.number)
        if info is None and holder is not None:
            problems.append(
                f"table number {spec.number} is {spec.name!r} in the ZIP but {holder.name!r} in "
                "this store"
            )
        elif info is not None and info.number != spec.number:
            problems.append(
                f"table {spec.name!r} is number {spec.number} in the ZIP but {info.number} in "
                "this store"
            )
        elif info is not None:
            count = _count(tx.conn, info)
            existing[spec.name] = count
            if count and mode == "fail":
                problems.append(
                    f"table {spec.name!r} already has {count} documents (--replace replaces "
                    "the ZIP's tables, --append adds to them)"
                )
    if problems:
        hint = ""
        if any("number" in p for p in problems):
            hint = (
                "; ids carry their table number, so import into a fresh data directory "
                "(before the app has created its tables)"
            )
        raise SnapshotError("cannot import: " + "; ".join(problems) + hint)
    for spec in plan.tables:
        if spec.name == STORAGE_TABLE and spec.count == 0:
            continue
        if tx.catalog.table(spec.name) is None:
            tx.create_table(spec.name, spec.number)
            result.created.append(spec.name)
    return existing


async def _clear(store: Store, name: str) -> int:
    removed = 0
    while True:
        n, _ = await store.write(lambda tx: _clear_chunk(tx, name), origin="import")
        if not n:
            return removed
        removed += n


def _clear_chunk(tx: Transaction, name: str) -> int:
    info = tx.catalog.table(name)
    assert info is not None
    docs = []
    for _, _, doc in tx.scan(info.indexes[BY_CREATION_TIME], b"", None):
        docs.append(doc)
        if len(docs) == CHUNK_ROWS:
            break
    for doc in docs:
        tx.delete(name, doc)
    return len(docs)


async def _write_table(
    store: Store,
    blobs: BlobDirectory,
    zf: zipfile.ZipFile,
    plan: _Plan,
    spec: _TableSpec,
    mode: ImportMode,
    progress: Progress | None,
    result: ImportResult,
) -> int:
    if spec.entry is None or (spec.name == STORAGE_TABLE and spec.count == 0):
        if progress is not None:
            progress(spec.name, 0, 0)
        return 0
    batches = _batches(zf, plan, spec)
    storage = spec.name == STORAGE_TABLE
    done = 0
    while batch := await asyncio.to_thread(next, batches, None):
        try:
            if storage:
                await asyncio.to_thread(_write_blobs, zf, plan, blobs, batch)
                result.files += len(batch)
            await store.write(
                functools.partial(_insert, table=spec.name, batch=batch, mode=mode), origin="import"
            )
        except SnapshotError:
            raise
        except Exception as exc:
            raise SnapshotError(
                f"the import stopped in table {spec.name!r} after {done} of {spec.count} "
                f"documents ({exc}); what was written so far stays (retry with --replace)"
            ) from exc
        done += len(batch)
        if progress is not None:
            progress(spec.name, done, spec.count)
    return done


Batch = list[tuple[str, dict[str, Any]]]


def _batches(zf: zipfile.ZipFile, plan: _Plan, spec: _TableSpec) -> Iterator[Batch]:
    batch: Batch = []
    storage = spec.name == STORAGE_TABLE
    for _, where, doc in _documents(zf, spec):
        if storage and doc["_id"] not in plan.files:
            continue
        batch.append((where, doc))
        if len(batch) == CHUNK_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def _insert(tx: Transaction, table: str, batch: Batch, mode: ImportMode) -> None:
    for where, doc in batch:
        if tx.get(doc["_id"]) is not None:
            raise SnapshotError(
                f"{where}: a document with _id {doc['_id']} is already in {table!r}"
                + (
                    " (--append keeps ids; --replace empties the table first)"
                    if mode == "append"
                    else ""
                )
            )
        tx.insert_existing(table, doc)


def _write_blobs(zf: zipfile.ZipFile, plan: _Plan, blobs: BlobDirectory, batch: Batch) -> None:
    """Each file of the batch, fsynced, before the documents naming them commit."""
    for _, doc in batch:
        storage_id = doc["_id"]
        with zf.open(plan.files[storage_id]) as src:
            blobs.write_stream(storage_id, src, sync_dir=False)
    blobs.sync_dir()
