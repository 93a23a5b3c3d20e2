"""``outpost backup FILE`` / ``outpost restore FILE``: the store and its stored files.

Backup is safe while ``outpost serve`` runs on the same data directory (one read
snapshot). Restore refuses while any process has the store open (the check ``outpost
import`` makes): stop the gateway, restore, start it again. ``gateway/backup.py`` says
what a backup holds and what a restore keeps.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.backup import BackupError, backup, restore
from gateway.cli.common import CommandError, UsageError
from gateway.cli.snapshot_cmd import data_dir_of, require_closed


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    make = commands.add_parser(
        "backup",
        parents=[common],
        help="copy the store and its stored files to FILE (safe while serving)",
        description="Write the data directory's store (one consistent moment, taken with "
        "SQLite's online backup API) and its stored files to FILE, a tar file. Safe while "
        "`outpost serve` runs. The admin and upstream keys are not copied.",
    )
    make.add_argument("file", metavar="FILE", type=Path)
    make.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    make.add_argument("--app", type=Path, default=Path("."), help="app folder (default .)")
    make.set_defaults(handler=run_backup)

    back = commands.add_parser(
        "restore",
        parents=[common],
        help="put a backup in place (the gateway stopped; nothing is deleted)",
        description="Restore FILE from `outpost backup` into the data directory. Stop the "
        "gateway first. The store and stored files it replaces are moved aside "
        "(.before-restore-TIME); the gateway id stays this directory's and a new "
        "replication epoch starts, so the upstream takes what follows as new.",
    )
    back.add_argument("file", metavar="FILE", type=Path)
    back.add_argument("--app", type=Path, default=Path("."), help="app folder (default .)")
    back.set_defaults(handler=run_restore)


def run_backup(args: argparse.Namespace) -> int:
    target: Path = args.file
    if target.exists() and not args.force:
        raise UsageError(f"{target} exists; pick another name or pass --force")
    try:
        result = backup(data_dir_of(args), target)
    except BackupError as exc:
        raise CommandError(str(exc)) from None
    print(
        f"backed up the store ({result.bytes:,} bytes with {result.files} stored files) to "
        f"{result.path} in {result.seconds:.1f} s"
    )
    if result.missing_files:
        print(
            f"outpost: warning: {len(result.missing_files)} _storage documents have no file "
            f"on disk (first: {result.missing_files[0]})"
        )
    return 0


def run_restore(args: argparse.Namespace) -> int:
    data_dir = data_dir_of(args)
    if not args.file.is_file():
        raise CommandError(f"{args.file}: no such file")
    require_closed(data_dir, "restore")
    try:
        result = restore(data_dir, args.file)
    except BackupError as exc:
        raise CommandError(str(exc)) from None
    print(
        f"restored {args.file} into {data_dir} ({result.files} stored files); gateway "
        f"{result.gateway_id}, replication epoch {result.epoch}"
    )
    for path in result.moved_aside:
        print(f"  kept what it replaced as {path}")
    return 0
