"""What every command shares: the common flags, settings resolution, logging."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import Settings
from gateway.config_file import LOG_LEVELS, Resolved, resolve_settings
from gateway.log_limits import RateLimitFilter
from gateway.redact import REDACTING_FILTER


class UsageError(Exception):
    """A command was given something it cannot use; exit status 2, one line."""


class CommandError(Exception):
    """A command could not do its job for a reason the user can fix; exit status 1."""


def common_flags() -> argparse.ArgumentParser:
    """A parent parser with the flags every gateway command takes."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("settings (override outpost.toml and OUTPOST_*)")
    group.add_argument("--host", help="bind address (default 127.0.0.1)")
    group.add_argument("--port", type=int, help="HTTP API port (default 3210; 0 = any free)")
    group.add_argument("--data-dir", help="store and admin key directory")
    group.add_argument("--log-level", choices=LOG_LEVELS, help="stderr log level")
    group.add_argument(
        "--config", type=Path, metavar="FILE", help="settings file (default APP/outpost.toml)"
    )
    return parent


def resolve_for(args: argparse.Namespace, app_dir: Path) -> Resolved:
    """Resolve the settings once: file, then environment, then the common flags."""
    flags = {name: getattr(args, name) for name in ("host", "port", "data_dir", "log_level")}
    resolved = resolve_settings(app_dir, config_file=args.config, environ=os.environ, flags=flags)
    for warning in resolved.warnings:
        print(f"outpost: warning: {warning}", file=sys.stderr)
    return resolved


def settings_for(args: argparse.Namespace, app_dir: Path) -> Settings:
    """The resolved settings alone."""
    return resolve_for(args, app_dir).settings


def has_display() -> bool:
    """Whether a browser could open a window here: not on a headless Pi over SSH,
    where ``webbrowser`` would start a text browser in the terminal instead."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def setup_logging(level: str) -> None:
    """Readable lines on stderr (the journal under systemd): repeated warnings and
    errors rate-limited, admin keys redacted from every line."""
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for handler in logging.getLogger().handlers:
        # Redact first: a suppressed record needs no redaction, a passed one does.
        handler.addFilter(REDACTING_FILTER)
        handler.addFilter(RateLimitFilter())


class IntermixedParser(argparse.ArgumentParser):
    """Positionals on either side of options: ``device add d1 --json APP --data-dir D``.

    Python 3.11's argparse gives an optional positional (APP_DIR) nothing when an option
    splits the positionals, then rejects APP as unrecognized; the intermixed parse
    collects the options first and then all positionals together.
    """

    _inside = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._inside:  # parse_known_intermixed_args calls back in here
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


@dataclass(frozen=True)
class RegistryItem:
    """The positional naming one entry of a registry command (``outpost device add ID``)."""

    dest: str
    metavar: str
    help: str


Handler = Callable[[argparse.Namespace], int]


def add_registry_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    *,
    command: str,
    summary: str,
    note: str,
    item: RegistryItem,
    add: tuple[str, Handler],
    listing: tuple[str, Handler],
    remove: tuple[str, Handler],
) -> None:
    """``outpost COMMAND add ITEM [--json] | list | remove ITEM [APP_DIR]``: the shape
    ``outpost device`` and ``outpost gateway`` share; ``note`` ends every description."""
    parser = commands.add_parser(command, help=summary, description=f"{summary}. {note}")
    # Any: typeshed wants the parents of the same class as the subparsers.
    actions: argparse._SubParsersAction[Any] = parser.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=IntermixedParser
    )
    for name, (text, handler), with_item in (
        ("add", add, True),
        ("list", listing, False),
        ("remove", remove, True),
    ):
        action: argparse.ArgumentParser = actions.add_parser(
            name, parents=[common], help=text, description=f"{text}. {note}"
        )
        if with_item:
            action.add_argument(item.dest, metavar=item.metavar, help=item.help)
        action.add_argument("app_dir", metavar="APP_DIR", nargs="?", default=".", type=Path)
        if name == "add":
            action.add_argument("--json", action="store_true", help="print one JSON object")
        action.set_defaults(handler=handler)
