"""``outpost serve [APP_DIR]``: the production run, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.common import CommandError, settings_for, setup_logging
from gateway.config import Settings
from gateway.gateway import Gateway

if TYPE_CHECKING:
    from gateway.http import HttpServer

log = logging.getLogger("gateway.cli")


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="run the gateway (what systemd starts)",
        description="Serve the HTTP API until SIGTERM or SIGINT, then stop cleanly.",
    )
    serve.add_argument("app_dir", nargs="?", default=".", type=Path)
    serve.set_defaults(handler=serve_app)


def serve_app(args: argparse.Namespace) -> int:
    settings = settings_for(args, args.app_dir)
    setup_logging(settings.log_level)
    log.info("app %s, data in %s", args.app_dir.resolve(), settings.data_dir)
    return asyncio.run(serve(args.app_dir, settings))


async def serve(
    app_dir: Path,
    settings: Settings,
    *,
    keep_last_good: bool = True,
    while_serving: Callable[[Gateway], Coroutine[Any, Any, None]] | None = None,
) -> int:
    """Open the gateway, listen, print the ready line; on a signal close HTTP, then it.

    ``while_serving`` runs beside the server until the stop signal (``outpost dev``'s
    file watcher); it is cancelled first on the way down.
    """
    from gateway.http import HttpServer  # noqa: F811 - aiohttp only for the commands that serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Listen first, answering 503 on /health/ready while the store opens and new
    # indexes backfill; the ready line is printed once calls are served.
    server = HttpServer()
    try:
        port = await _listen(server, settings)
        async with Gateway.open(
            app_dir, settings.data_dir, settings, keep_last_good=keep_last_good
        ) as gateway:
            _report_fallback(gateway)
            server.attach(gateway)
            if while_serving is None:  # ``outpost dev`` reloads: its old apps must go
                _freeze_startup_objects()
            side: asyncio.Task[None] | None = (
                asyncio.create_task(while_serving(gateway)) if while_serving else None
            )
            host = f"[{settings.host}]" if ":" in settings.host else settings.host
            print(f"Outpost listening on http://{host}:{port}", flush=True)
            await stop.wait()
            log.info("stopping")
            if side is not None:
                side.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await side
            await server.close()  # stop accepting and finish in-flight calls first
    finally:
        await server.close()
    log.info("stopped")
    return 0


def _freeze_startup_objects() -> None:
    """Keep what startup built (modules, the app, the store) out of every later garbage
    collection: a full collection scans every tracked object, and these ~100k never
    become garbage. With a thousand sockets open (bench/fanout.py) a full collection
    took ~250 ms before and ~125 ms after. Not for ``outpost dev``, whose reloads
    leave old app generations to collect."""
    gc.collect()
    gc.freeze()


def _report_fallback(gateway: Gateway) -> None:
    if gateway.app_error is not None:
        print(f"outpost: {gateway.app_error}", file=sys.stderr, flush=True)
        print("outpost: serving the last good copy of the app instead", file=sys.stderr)


async def _listen(server: HttpServer, settings: Settings) -> int:
    try:
        return await server.start(settings.host, settings.port)
    except OSError as exc:
        raise CommandError(
            f"cannot listen on {settings.host}:{settings.port} ({exc.strerror or exc}); "
            "pick another --port or stop the process using it"
        ) from None
