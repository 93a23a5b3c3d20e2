"""The ``outpost`` command line: one module per command, this one wires them up.

Exit status: 0 done, 1 the command failed (message on stderr), 2 a usage or
configuration error (one line naming the flag, the variable or the file and line) or a
program the settings need that is not installed (one line saying how to install it).

A failure whose cause is expected (an ``OutpostError``: a broken app, a store that
cannot open, a bad setting; an ``OSError``: a data directory that is a file, no
permission, a port in use) is one line on stderr, never a traceback: the user can act
on it. A start that fails on anything else is a bug in Outpost: the one line comes
after the traceback, which is what whoever fixes it needs.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from importlib.metadata import PackageNotFoundError, version

from gateway.cli import (
    backup_cmd,
    call,
    check,
    config_cmd,
    dashboard_cmd,
    data,
    dev,
    device,
    discover_cmd,
    gateway_cmd,
    mqtt_cmd,
    scaffold,
    serve,
    snapshot_cmd,
    status,
    tls_cmd,
)
from gateway.cli.common import CommandError, UsageError, common_flags
from gateway.errors import ConfigError, MissingProgramError, OutpostError, StartError


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
    dashboard_cmd.add_parser(commands, common)
    check.add_parser(commands)
    config_cmd.add_parser(commands, common)
    snapshot_cmd.add_parser(commands, common)
    backup_cmd.add_parser(commands, common)
    device.add_parser(commands, common)
    gateway_cmd.add_parser(commands, common)
    mqtt_cmd.add_parser(commands, common)
    status.add_parser(commands, common)
    discover_cmd.add_parser(commands)
    tls_cmd.add_parser(commands, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 0
    try:
        status: int = args.handler(args)
    except StartError as exc:
        return _start_failed(exc)
    except (ConfigError, MissingProgramError, UsageError) as exc:
        print(f"outpost: {exc}", file=sys.stderr)
        return 2
    except (CommandError, OutpostError) as exc:
        print(f"outpost: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"outpost: {_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status


def _start_failed(exc: StartError) -> int:
    """One line (after the traceback if the cause is a bug); 2 for a setting or a missing
    program, else 1."""
    cause = exc.__cause__
    if cause is not None and not isinstance(cause, OutpostError | OSError):
        traceback.print_exception(cause, file=sys.stderr)
    print(f"outpost: {exc}", file=sys.stderr)
    return 2 if isinstance(cause, ConfigError | MissingProgramError) else 1


def _os_error(exc: OSError) -> str:
    if exc.strerror is None:
        return str(exc)
    return exc.strerror if exc.filename is None else f"{exc.strerror}: {exc.filename}"


if __name__ == "__main__":
    sys.exit(main())
