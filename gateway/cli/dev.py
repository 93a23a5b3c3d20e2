"""``outpost dev [APP_DIR]``: serve, and swap the app in on every save.

A module that does not load (or a schema the data violates) is reported with its file
and line; the last version that loaded keeps serving and clients stay connected.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from gateway.cli.common import settings_for, setup_logging
from gateway.cli.serve import serve
from gateway.errors import AppLoadError, SchemaDefinitionError, SchemaEnforcementError
from gateway.gateway import Gateway

log = logging.getLogger("gateway.cli")
POLL_INTERVAL_S = 0.3


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    dev = commands.add_parser(
        "dev",
        parents=[common],
        help="run the app with reload on save",
        description="Serve the app and reload it whenever a file under convex/ changes.",
    )
    dev.add_argument("app_dir", nargs="?", default=".", type=Path)
    dev.set_defaults(handler=dev_app)


def dev_app(args: argparse.Namespace) -> int:
    settings = settings_for(args, args.app_dir)
    setup_logging(settings.log_level)
    watcher = AppWatcher(args.app_dir / "convex")
    watcher.take_baseline()  # before the first load, so no edit made after it goes unseen
    return asyncio.run(
        serve(args.app_dir, settings, keep_last_good=False, while_serving=watcher.run)
    )


Signature = frozenset[tuple[str, int, int]]


class AppWatcher:
    """Polls the app's files (no extra dependency; a Pi's SD card is cheap to stat)."""

    def __init__(self, convex_dir: Path) -> None:
        self.convex_dir = convex_dir
        self.reloads = 0
        self.seen: Signature | None = None

    def take_baseline(self) -> None:
        self.seen = self.signature()

    def signature(self) -> Signature:
        entries = []
        for file in self.convex_dir.rglob("*.py"):
            if "__pycache__" in file.parts:
                continue
            try:
                stat = file.stat()
            except FileNotFoundError:
                continue
            entries.append((str(file), stat.st_mtime_ns, stat.st_size))
        return frozenset(entries)

    async def run(self, gateway: Gateway) -> None:
        if self.seen is None:
            self.seen = await asyncio.to_thread(self.signature)
        while True:
            await asyncio.sleep(POLL_INTERVAL_S)
            current = await asyncio.to_thread(self.signature)
            if current == self.seen:
                continue
            self.seen = current
            await self.reload(gateway)

    async def reload(self, gateway: Gateway) -> None:
        try:
            app = await gateway.reload_app()
        except (AppLoadError, SchemaDefinitionError, SchemaEnforcementError) as exc:
            print(f"outpost dev: {exc}", file=sys.stderr)
            print(
                "outpost dev: still serving the last version that loaded",
                file=sys.stderr,
                flush=True,
            )
            return
        self.reloads += 1
        print(
            f"outpost dev: reloaded ({len(app.functions)} functions)", file=sys.stderr, flush=True
        )
