"""The ``outpost`` command line: one module per command, this one wires them up.

Exit status: 0 done, 1 the command failed (message on stderr), 2 a usage or
configuration error (one line naming the flag, the variable or the file and line).
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version

from gateway.cli import call, check, config_cmd, data, dev, scaffold, serve, snapshot_cmd
from gateway.cli.common import CommandError, UsageError, common_flags
from gateway.errors import ConfigError, OutpostError


def _version() -> str:
    try:
        return version("outpost-gateway")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each module adds its own subcommand."""
    parser = argparse.ArgumentParser(prog="outpost", description="Outpost edge gateway")
    parser.add_argument("--version", action="version", version=f"outpost {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = common_flags()
    scaffold.add_parser(commands)
    serve.add_parser(commands, common)
    dev.add_parser(commands, common)
    call.add_parser(commands, common)
    data.add_parser(commands, common)
    check.add_parser(commands)
    config_cmd.add_parser(commands, common)
    snapshot_cmd.add_parser(commands, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 0
    try:
        status: int = args.handler(args)
    except (ConfigError, UsageError) as exc:
        print(f"outpost: {exc}", file=sys.stderr)
        return 2
    except (CommandError, OutpostError) as exc:
        print(f"outpost: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
