"""``outpost backup`` / ``outpost restore``: the whole store and its stored files, as is.

A backup is a tar file: ``outpost-backup.json`` (what it holds), ``outpost.sqlite3`` (a
copy made with SQLite's online backup API, in one step: one read transaction, so one
consistent moment, while ``outpost serve`` goes on writing; WAL readers never block the
writer) and ``storage/<id>`` for each stored file the copy's ``_storage`` table names.
Stored files are written once and never changed, so copying them after the snapshot
gives each one as it was. The admin key and the upstream key are not in it: secrets stay
where they are.

A restore never deletes: the store and stored files it replaces are moved aside with a
``.before-restore-<time>`` suffix. It keeps the data directory's gateway id (the gateway
stays the same gateway to its upstream and devices) and starts a new replication epoch
above both the backup's and the replaced store's (``gateway.store.epoch``): the restored
store hands out seqs the upstream has already seen, which would otherwise be dropped as
seen. The clock's last timestamp is kept at the higher of the two, so timestamps never
go back.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import OutpostError
from gateway.private_files import fsync_directory
from gateway.snapshot import BLOB_DIRNAME
from gateway.store.layout import DB_FILENAME, LAYOUT_VERSION

MANIFEST = "outpost-backup.json"
FORMAT = "outpost-backup/1"
_STORAGE_IDS_SQL = (
    "SELECT d.id FROM documents d JOIN tables t ON d.tbl = t.number WHERE t.name = '_storage'"
)


class BackupError(OutpostError):
    """A backup that cannot be made, or a file that is not a backup Outpost can restore."""


@dataclass
class BackupResult:
    path: Path
    bytes: int
    files: int
    seconds: float
    missing_files: list[str] = field(default_factory=list)


@dataclass
class RestoreResult:
    gateway_id: str
    epoch: int
    files: int
    moved_aside: list[Path]


def backup(data_dir: Path, target: Path) -> BackupResult:
    """Write a backup of the store in ``data_dir`` to ``target`` (replaced atomically)."""
    started = time.monotonic()
    source = data_dir / DB_FILENAME
    if not source.is_file():
        raise BackupError(f"no store at {source}; nothing to back up")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".outpost-backup-") as work:
        copy = Path(work) / DB_FILENAME
        _snapshot(source, copy)
        meta, storage_ids = _read_copy(copy)
        manifest = {
            "format": FORMAT,
            "createdMs": time.time() * 1000,
            "gatewayId": meta.get("gateway_id"),
            "epoch": int(meta.get("epoch", "1")),
            "layout": int(meta.get("layout_version", LAYOUT_VERSION)),
        }
        partial = Path(work) / "backup.tar"
        files, missing = _write_tar(partial, manifest, copy, data_dir / BLOB_DIRNAME, storage_ids)
        os.chmod(partial, 0o600)  # the data itself: as private as the store
        _fsync(partial)
        os.replace(partial, target)
        fsync_directory(target.parent)
    size = target.stat().st_size
    return BackupResult(target, size, files, time.monotonic() - started, missing)


def _snapshot(source: Path, copy: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(copy)
        try:
            src.backup(dst)  # every page in one step: one read transaction
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"could not copy the store {source}: {exc}") from exc
    finally:
        src.close()


def _read_copy(copy: Path) -> tuple[dict[str, str], list[str]]:
    conn = sqlite3.connect(copy)
    try:
        (verdict,) = conn.execute("PRAGMA integrity_check").fetchone()
        if verdict != "ok":
            raise BackupError(f"the store's copy fails SQLite's integrity check: {verdict}")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        ids = [row[0] for row in conn.execute(_STORAGE_IDS_SQL)]
        return meta, ids
    finally:
        conn.close()


def _write_tar(
    path: Path, manifest: dict[str, Any], copy: Path, blobs: Path, storage_ids: list[str]
) -> tuple[int, list[str]]:
    files, missing = 0, []
    with tarfile.open(path, "w") as tar:
        data = json.dumps(manifest, indent=2).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime = len(data), int(time.time())
        tar.addfile(info, io.BytesIO(data))
        tar.add(copy, arcname=DB_FILENAME)
        for storage_id in storage_ids:
            blob = blobs / storage_id
            try:
                tar.add(blob, arcname=f"{BLOB_DIRNAME}/{storage_id}")
            except FileNotFoundError:
                missing.append(storage_id)
                continue
            files += 1
    return files, missing


def restore(data_dir: Path, source: Path) -> RestoreResult:
    """Put the backup ``source`` in place in ``data_dir`` (no process may have the store
    open: the caller checks). Nothing is deleted: what it replaces is moved aside."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".outpost-restore-") as work:
        staged = Path(work)
        manifest = _extract(source, staged)
        current = _current_meta(data_dir / DB_FILENAME)
        gateway_id, epoch = _adopt(staged / DB_FILENAME, manifest, current)
        moved = _swap_in(data_dir, staged / DB_FILENAME)
        files = 0
        if (staged / BLOB_DIRNAME).is_dir():
            os.replace(staged / BLOB_DIRNAME, data_dir / BLOB_DIRNAME)
            files = sum(1 for _ in (data_dir / BLOB_DIRNAME).iterdir())
        fsync_directory(data_dir)
    return RestoreResult(gateway_id, epoch, files, moved)


def _extract(source: Path, staged: Path) -> dict[str, Any]:
    try:
        tar = tarfile.open(source, "r")  # noqa: SIM115 - closed by the with below
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"{source} is not an Outpost backup (not a tar file: {exc})") from exc
    with tar:
        names = set(tar.getnames())
        if MANIFEST not in names or DB_FILENAME not in names:
            raise BackupError(
                f"{source} is not an Outpost backup (it lacks {MANIFEST} or {DB_FILENAME})"
            )
        manifest = _manifest(tar, source)
        for member in tar.getmembers():
            if member.name == DB_FILENAME or _is_blob(member):
                tar.extract(member, staged, filter="data")
                os.chmod(staged / member.name, 0o600)
            elif member.name != MANIFEST:
                raise BackupError(f"{source} holds {member.name!r}, which no backup has")
    if (staged / BLOB_DIRNAME).is_dir():
        os.chmod(staged / BLOB_DIRNAME, 0o700)
    _check_store(staged / DB_FILENAME, source)
    return manifest


def _manifest(tar: tarfile.TarFile, source: Path) -> dict[str, Any]:
    raw = tar.extractfile(MANIFEST)
    try:
        manifest = json.loads(raw.read() if raw is not None else b"")
    except ValueError as exc:
        raise BackupError(f"{source}: {MANIFEST} is not JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{source}: not a backup this Outpost reads (format {FORMAT})")
    if int(manifest.get("layout", 0)) > LAYOUT_VERSION:
        raise BackupError(
            f"{source} was made by a newer Outpost (store layout {manifest['layout']}, this "
            f"version reads up to {LAYOUT_VERSION}); upgrade Outpost to restore it"
        )
    return manifest


def _is_blob(member: tarfile.TarInfo) -> bool:
    parent, _, name = member.name.partition("/")
    return member.isfile() and parent == BLOB_DIRNAME and bool(name) and "/" not in name


def _check_store(path: Path, source: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        (verdict,) = conn.execute("PRAGMA integrity_check").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{source}: its store is not a SQLite database ({exc})") from exc
    finally:
        conn.close()
    if verdict != "ok":
        raise BackupError(f"{source}: its store fails SQLite's integrity check: {verdict}")


def _current_meta(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.Error:
        return {}  # a damaged store being replaced: nothing of it to keep
    finally:
        conn.close()


def _adopt(path: Path, manifest: dict[str, Any], current: dict[str, str]) -> tuple[str, int]:
    """The restored store takes the data directory's gateway id, a new epoch above both,
    and the later clock; its fingerprint is dropped (the next open records this place)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        gateway_id = current.get("gateway_id") or meta.get("gateway_id") or ""
        epoch = max(int(current.get("epoch", "1")), int(meta.get("epoch", "1"))) + 1
        last_ts = max(int(current.get("last_ts", "0")), int(meta.get("last_ts", "0")))
        conn.execute("BEGIN IMMEDIATE")
        for key, value in (
            ("gateway_id", gateway_id),
            ("epoch", str(epoch)),
            ("last_ts", str(last_ts)),
        ):
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
        conn.execute("DELETE FROM meta WHERE key = 'fingerprint'")
        conn.execute("COMMIT")
    finally:
        conn.close()
    _fsync(path)
    return gateway_id, epoch


def _swap_in(data_dir: Path, restored: Path) -> list[Path]:
    """Put ``restored`` in the store's place, the replaced store kept aside, with never a
    moment without a store there (a kill -9 midway must not leave an empty directory,
    where the next start would make a new, empty gateway). The old file is hard-linked
    aside first, its WAL folded into it (or, if it cannot be, moved aside with it: a WAL
    left beside the restored file would be replayed into it), then ``restored`` replaces
    it in one rename. The old stored-files folder is moved aside (the restored one then
    takes its name, in ``restore``)."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    db, moved = data_dir / DB_FILENAME, []
    wal, aside = Path(f"{db}-wal"), data_dir / f"{DB_FILENAME}.before-restore-{stamp}"
    if db.exists():
        _fold_wal(db)
        try:
            os.link(db, aside)
        except OSError:  # a file system without hard links: a plain move, briefly no store
            os.replace(db, aside)
        moved.append(aside)
        if wal.exists():
            os.replace(wal, Path(f"{aside}-wal"))
            moved.append(Path(f"{aside}-wal"))
    Path(f"{db}-shm").unlink(missing_ok=True)  # rebuilt from the WAL: not data
    os.replace(restored, db)
    blobs = data_dir / BLOB_DIRNAME
    if blobs.exists():
        os.replace(blobs, data_dir / f"{BLOB_DIRNAME}.before-restore-{stamp}")
        moved.append(data_dir / f"{BLOB_DIRNAME}.before-restore-{stamp}")
    return moved


def _fold_wal(db: Path) -> None:
    """Checkpoint the replaced store's WAL into its file (the last connection's close
    removes the WAL); a store too damaged for that keeps its WAL beside it."""
    if not Path(f"{db}-wal").exists():
        return
    try:
        conn = sqlite3.connect(db)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
    except sqlite3.Error:
        return


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
