"""``outpost config [APP_DIR]``: the resolved settings, the reference, the template."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gateway.cli.common import resolve_for
from gateway.config_doc import settings_markdown, toml_template
from gateway.config_file import redact_url


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    config = commands.add_parser(
        "config",
        parents=[common],
        help="print the resolved settings and where each came from",
        description="Print the settings an app would run with (file < environment < flags).",
    )
    config.add_argument("app_dir", nargs="?", default=".", type=Path)
    shown = config.add_mutually_exclusive_group()
    shown.add_argument(
        "--markdown", action="store_true", help="print the reference (docs/configuration.md)"
    )
    shown.add_argument("--template", action="store_true", help="print a commented outpost.toml")
    config.set_defaults(handler=show_config)


def show_config(args: argparse.Namespace) -> int:
    if args.markdown:
        print(settings_markdown(), end="")
        return 0
    if args.template:
        print(toml_template(), end="")
        return 0
    resolved = resolve_for(args, args.app_dir)
    for name, origin in resolved.origins.items():
        value = getattr(resolved.settings, name)
        if name == "mqtt_url":
            value = redact_url(value)  # its password is a secret, unlike the rest
        text = json.dumps(dict(value) if name == "env" else value)
        print(f"{name} = {text}  # {origin}")
    return 0
