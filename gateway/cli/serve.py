"""``outpost serve [APP_DIR]``: the production run, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.common import settings_for, setup_logging
from gateway.config import Settings
from gateway.gateway import Gateway

if TYPE_CHECKING:
    from gateway.service import Service

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
    """Start the service, print the ready line, and on SIGTERM/SIGINT stop it.

    A signal during the start cancels it: the steps already started are stopped and
    the command exits 0 (a stop was asked for, and done). ``while_serving`` runs beside
    the server until the stop (``outpost dev``'s file watcher). The service and its
    order of steps are in ``gateway.service``.
    """
    from gateway.service import Service  # aiohttp only for the commands that serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    service = Service(
        app_dir,
        settings,
        keep_last_good=keep_last_good,
        while_serving=while_serving,
        on_ready=_announce,
        freeze=while_serving is None,
    )
    if not await _start_unless_stopped(service.start(), stop):
        log.info("stopped before it was ready")
        return 0
    await stop.wait()
    log.info("stopping")
    await service.stop()
    log.info("stopped")
    return 0


async def _start_unless_stopped(start: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run ``start`` unless ``stop`` is set first (then cancel it: it unwinds itself).
    True once started; a start failure is raised."""
    starting = asyncio.create_task(start, name="outpost-start")
    stopping = asyncio.create_task(stop.wait(), name="outpost-stop-signal")
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not starting.done():
        starting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stopping
    try:
        await starting
    except asyncio.CancelledError:
        return False
    return True


def _announce(service: Service) -> None:
    """The ready step's output: a fallback warning, then the line scripts wait for."""
    gateway, settings = service.gateway, service.settings
    if gateway.app_error is not None:
        print(f"outpost: {gateway.app_error}", file=sys.stderr, flush=True)
        print("outpost: serving the last good copy of the app instead", file=sys.stderr)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    scheme = service.scheme  # https with ``tls``
    print(f"Outpost listening on {scheme}://{host}:{service.port}", flush=True)
    if service.site_port is not None:  # a line of its own: scripts match the first whole
        print(f"Outpost HTTP actions on {scheme}://{host}:{service.site_port}", flush=True)
    # A log line, not a printed one: scripts and tests read the printed lines whole.
    log.info(
        "dashboard: %s://%s:%d/dashboard/ (`outpost dashboard` opens it logged in)",
        *(scheme, host, service.port),
    )
