"""``outpost check [APP_DIR]``: load an app and list its functions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.errors import AppLoadError
from gateway.runtime.crons import check_crons
from gateway.runtime.http_router import check_http_routes
from gateway.runtime.loader import load_app


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser("check", help="load an app and list its functions")
    check.add_argument("app_dir", nargs="?", default=".", type=Path)
    check.set_defaults(handler=lambda args: check_app(args.app_dir))


def check_app(app_dir: Path) -> int:
    """Load the app and list its functions, cron jobs and HTTP routes; a broken module,
    cron job or route is named with file:line."""
    try:
        app = load_app(app_dir)
    except AppLoadError as exc:
        print(f"outpost: {exc}", file=sys.stderr)
        return 1
    try:
        jobs = check_crons(app.crons, app)
        check_http_routes(app.http, app.directory)
    except AppLoadError as exc:
        app.unload()
        print(f"outpost: {exc}", file=sys.stderr)
        return 1
    try:
        for path, fn in sorted(app.functions.items()):
            print(f"{fn.visibility:8} {fn.kind:8} {path}")
        for job in jobs:
            print(f"cron     {job.name!r}: {job.path} {job.schedule.describe()}")
        for route in app.http.routes if app.http is not None else ():
            print(f"http     {route.label} -> {route.action.name} ({route.where})")
        tables = getattr(app.schema, "tables", {}) or {}
        print(f"{len(app.functions)} functions, {len(tables)} tables in the schema")
    finally:
        app.unload()
    return 0
