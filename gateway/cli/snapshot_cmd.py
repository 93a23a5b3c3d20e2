"""``outpost export FILE.zip`` / ``outpost import FILE.zip``: Convex snapshot ZIPs.

Both work on the data directory directly; the gateway need not run. Export reads one
read-only snapshot, so it is safe while ``outpost serve`` runs on the same directory
(WAL readers never block its writer). Import writes, so it refuses while any other
process has the store open: every SQLite connection in WAL mode holds a shared lock
on one byte of the ``-shm`` file for as long as it is open, and import tries to take
that byte exclusively first (the check SQLite itself makes to see whether it is the
first connection). Stop the gateway, import, start it again.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import fcntl
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from gateway.cli.common import CommandError, UsageError, settings_for
from gateway.snapshot import ExportResult, ImportResult, export_snapshot, import_snapshot
from gateway.store import Store
from gateway.store.layout import DB_FILENAME

# unix VFS: the WAL-index "dead man switch" byte every open connection read-locks.
_SHM_DMS_BYTE = 128


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    export = commands.add_parser(
        "export",
        parents=[common],
        help="write the data to a snapshot ZIP (Convex's layout)",
        description="Export every table and stored file to FILE.zip (like `npx convex "
        "export`); safe while `outpost serve` runs.",
    )
    export.add_argument("file", metavar="FILE.zip", type=Path)
    export.add_argument(
        "--no-file-storage", action="store_true", help="leave stored files out of the ZIP"
    )
    export.add_argument("--force", action="store_true", help="overwrite FILE.zip if it exists")
    _shared(export)
    export.set_defaults(handler=run_export)

    imp = commands.add_parser(
        "import",
        parents=[common],
        help="load a snapshot ZIP (ids and creation times kept)",
        description="Import FILE.zip from `outpost export` or `npx convex export` into the "
        "data directory. Stop the gateway first. By default every table of the ZIP must be "
        "empty or new here.",
    )
    imp.add_argument("file", metavar="FILE.zip", type=Path)
    mode = imp.add_mutually_exclusive_group()
    mode.add_argument(
        "--replace",
        dest="mode",
        action="store_const",
        const="replace",
        help="empty the tables the ZIP has first (other tables are untouched)",
    )
    mode.add_argument(
        "--append",
        dest="mode",
        action="store_const",
        const="append",
        help="add the ZIP's documents to the tables (ids kept: one already present fails)",
    )
    imp.set_defaults(mode="fail")
    _shared(imp)
    imp.set_defaults(handler=run_import)


def _shared(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app", type=Path, default=Path("."), help="app folder (default .)")
    parser.add_argument(
        "--progress", action="store_true", help="show progress even when stderr is not a TTY"
    )


class ProgressBar:
    """``table  12,345/20,000 [#####.....]`` on one stderr line, redrawn at most 10x/s."""

    WIDTH = 30

    def __init__(self, verb: str, out: TextIO = sys.stderr) -> None:
        self.verb = verb
        self.out = out
        self._table: str | None = None
        self._last = 0.0

    def __call__(self, table: str, done: int, total: int) -> None:
        now = time.monotonic()
        if table != self._table:
            self.finish()
            self._table = table
        elif done < total and now - self._last < 0.1:
            return
        self._last = now
        filled = self.WIDTH * done // total if total else self.WIDTH
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.out.write(f"\r{self.verb} {table}  {done:,}/{total:,} [{bar}]")
        self.out.flush()

    def finish(self) -> None:
        if self._table is not None:
            self.out.write("\n")
            self.out.flush()
            self._table = None


def _progress(args: argparse.Namespace, verb: str) -> ProgressBar | None:
    return ProgressBar(verb) if args.progress or sys.stderr.isatty() else None


def data_dir_of(args: argparse.Namespace) -> Path:
    """The data directory the settings name for ``--app`` (flags, env, outpost.toml)."""
    return Path(settings_for(args, args.app).data_dir)


def require_closed(data_dir: Path, doing: str) -> None:
    """Refuse ``doing`` (a verb: "import", "restore") while another process has the
    store in ``data_dir`` open."""
    holder = store_in_use(data_dir / DB_FILENAME)
    if holder:
        raise CommandError(
            f"the store in {data_dir} is open in another process ({holder}); stop "
            f"`outpost serve` (or the other command) and {doing} again"
        )


def run_export(args: argparse.Namespace) -> int:
    data_dir = data_dir_of(args)
    target: Path = args.file
    if target.exists() and not args.force:
        raise UsageError(f"{target} exists; pick another name or pass --force")
    if not (data_dir / DB_FILENAME).is_file():
        raise CommandError(f"no store at {data_dir / DB_FILENAME}; nothing to export")
    bar = _progress(args, "exporting")
    try:
        result = asyncio.run(
            export_snapshot(data_dir, target, progress=bar, include_files=not args.no_file_storage)
        )
    finally:
        if bar is not None:
            bar.finish()
    _report_export(result)
    return 0


def _report_export(result: ExportResult) -> None:
    docs = sum(n for t, n in result.tables.items() if t != "_storage")
    users = sum(1 for t in result.tables if t != "_storage")
    print(
        f"exported {docs} documents in {users} tables and {result.files} stored files "
        f"to {result.path}"
    )
    if result.missing_files:
        print(
            f"outpost: warning: {len(result.missing_files)} _storage documents have no file "
            f"on disk (first: {result.missing_files[0]})",
            file=sys.stderr,
        )


def run_import(args: argparse.Namespace) -> int:
    data_dir = data_dir_of(args)
    if not args.file.is_file():
        raise CommandError(f"{args.file}: no such file")
    require_closed(data_dir, "import")
    bar = _progress(args, "importing")
    try:
        result = asyncio.run(_import(data_dir, args.file, args.mode, bar))
    finally:
        if bar is not None:
            bar.finish()
    _report_import(result)
    return 0


async def _import(data_dir: Path, path: Path, mode: str, bar: ProgressBar | None) -> ImportResult:
    async with await Store.open(data_dir) as store:
        return await import_snapshot(store, path, mode=mode, progress=bar)  # type: ignore[arg-type]


def _report_import(result: ImportResult) -> None:
    docs = sum(n for t, n in result.tables.items() if t != "_storage")
    users = sum(1 for t in result.tables if t != "_storage")
    replaced = sum(result.replaced.values())
    text = f"imported {docs} documents in {users} tables and {result.files} stored files"
    if replaced:
        text += f" (replacing {replaced} documents)"
    print(text)
    if result.skipped_storage:
        print(
            f"outpost: warning: {len(result.skipped_storage)} _storage documents had no file "
            "in the ZIP and were left out (exported without file storage?)",
            file=sys.stderr,
        )


def store_in_use(db_path: Path) -> str | None:
    """Why another process has the store open, or None if none has.

    Tries to take the ``-shm`` lock byte every open WAL connection holds shared; POSIX
    record locks do not conflict within one process, so call this before opening."""
    shm = Path(f"{db_path}-shm")
    try:
        fd = os.open(shm, os.O_RDWR)
    except FileNotFoundError:
        return None  # no connection has the WAL open
    except OSError as exc:
        return f"cannot check {shm}: {exc.strerror}"
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _SHM_DMS_BYTE, os.SEEK_SET)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return f"{shm.name} is locked"
            raise
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, _SHM_DMS_BYTE, os.SEEK_SET)
        return None
    finally:
        os.close(fd)
