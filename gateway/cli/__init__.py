"""The ``outpost`` command line.

The daily commands (``init``, ``dev``, ``serve``, ``run``, ``data``, ``export``) arrive
with the HTTP API; this first cut checks an app and prints the version.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from gateway.errors import AppLoadError, OutpostError
from gateway.runtime.loader import load_app


def _version() -> str:
    try:
        return version("outpost-gateway")
    except PackageNotFoundError:
        return "unknown"


def _check(app_dir: Path) -> int:
    """Load the app and list its functions; a broken module is named with file:line."""
    try:
        app = load_app(app_dir)
    except AppLoadError as exc:
        print(f"outpost: {exc}", file=sys.stderr)
        return 1
    try:
        for path, fn in sorted(app.functions.items()):
            print(f"{fn.visibility:8} {fn.kind:8} {path}")
        tables = getattr(app.schema, "tables", {}) or {}
        print(f"{len(app.functions)} functions, {len(tables)} tables in the schema")
    finally:
        app.unload()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="outpost", description="Outpost edge gateway")
    parser.add_argument("--version", action="version", version=f"outpost {_version()}")
    commands = parser.add_subparsers(dest="command")
    check = commands.add_parser("check", help="load an app and list its functions")
    check.add_argument("app_dir", nargs="?", default=".", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return _check(args.app_dir)
    except OutpostError as exc:
        print(f"outpost: {exc}", file=sys.stderr)
        return 1
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
