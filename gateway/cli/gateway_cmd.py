"""``outpost gateway add|list|remove``: the edge gateways allowed to push to this hub.

The registry is ``<data dir>/replication/gateways`` (``gateway.replication.credentials``):
one line per gateway, the SHA-256 of its key only. NAME is what the edge sends as
``gateway`` in its batches: its gateway id (``Store.gateway_id``, printed by the edge's
``outpost config``/logs at start), so no mapping is kept. ``add`` makes a random 256-bit
key, stores its hash and prints the key once (it goes into the edge's ``upstream_key``
file); it cannot be shown again, only replaced (``remove``, then ``add``).

A running hub checks the file before every batch, so ``add`` and ``remove`` take effect
at the next batch with no signal: a removed gateway's next push is refused. Writers take
the directory's lock (``files_lock``, as ``outpost device`` does for the broker's
password file), so two ``add`` at once never lose each other's line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gateway.cli.common import CommandError, RegistryItem, add_registry_commands, settings_for
from gateway.private_files import files_lock
from gateway.replication.credentials import (
    check_name,
    generate_key,
    hash_key,
    read_registry,
    registry_path,
    write_registry,
)
from gateway.store.datadir import make_private_dir

_LIVE = "A running hub sees the change from the next batch on."


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    add_registry_commands(
        commands,
        common,
        command="gateway",
        summary="add, list or remove the edge gateways allowed to push to this hub",
        note=f"Edge gateways of this hub (hub = true). {_LIVE}",
        item=RegistryItem("name", "NAME", "the edge's gateway id"),
        add=("register an edge gateway and print its key once", add_gateway),
        listing=("print the gateway names, one per line", list_gateways),
        remove=("revoke an edge gateway's key", remove_gateway),
    )


def add_gateway(args: argparse.Namespace) -> int:
    settings = settings_for(args, args.app_dir)
    name = _checked(args.name)
    path = _registry(Path(settings.data_dir), create=True)
    key = generate_key()
    with files_lock(path.parent):
        entries = _read(path)
        if name in entries:
            raise CommandError(
                f"gateway {name!r} already exists; to give it a new key, "
                f"`outpost gateway remove {name}` first"
            )
        write_registry(path, {**entries, name: hash_key(key)})
    if args.json:
        print(json.dumps({"gateway": name, "key": key}))
    else:
        print(f"gateway: {name}\nkey: {key}")
        print(
            "the key is shown only this once (the hub keeps its hash); put it in the edge's "
            "data directory as the file upstream_key",
            file=sys.stderr,
        )
    if not settings.hub:
        print("note: hub is off here; set hub = true for edges to push", file=sys.stderr)
    return 0


def list_gateways(args: argparse.Namespace) -> int:
    settings = settings_for(args, args.app_dir)
    names = sorted(_read(_registry(Path(settings.data_dir), create=False)))
    if not names:
        print("no gateways yet; add one with `outpost gateway add NAME`", file=sys.stderr)
    for name in names:
        print(name)
    return 0


def remove_gateway(args: argparse.Namespace) -> int:
    settings = settings_for(args, args.app_dir)
    name = _checked(args.name)
    path = _registry(Path(settings.data_dir), create=False)
    if not path.exists():
        raise CommandError(f"no gateway {name!r} (see `outpost gateway list`)")
    with files_lock(path.parent):
        entries = _read(path)
        if name not in entries:
            raise CommandError(f"no gateway {name!r} (see `outpost gateway list`)")
        del entries[name]
        write_registry(path, entries)
    print(f"removed gateway {name!r}; its next batch is refused", file=sys.stderr)
    return 0


def _checked(name: str) -> str:
    try:
        check_name(name)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return name


def _registry(data_dir: Path, *, create: bool) -> Path:
    """The registry file; its directories made 0700 when ``create``."""
    path = registry_path(data_dir)
    if create:
        make_private_dir(data_dir)
        make_private_dir(path.parent)
    return path


def _read(path: Path) -> dict[str, str]:
    try:
        return read_registry(path)
    except ValueError as exc:
        raise CommandError(f"{exc} (fix or move the file)") from None
