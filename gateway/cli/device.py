"""``outpost device add|list|remove``: the devices allowed on the managed MQTT broker.

The registry is the managed broker's password file, ``<data dir>/mosquitto/passwords``:
one ``device:$7$...`` line per device, hashes only (see ``gateway.mqtt.passwords``). A
device ID is its MQTT username and the ``{device}`` segment of its topics, so the ACL
ties every topic to the device that owns it. ``add`` makes a random password, stores its
hash and prints the password once: it cannot be shown again, only replaced (``remove``,
then ``add``).

Debian's ``mosquitto.service`` with Outpost's drop-in (``deploy/install.sh``, or
``outpost mqtt config`` by hand) keeps the registry here too, with ``mqtt_broker =
"external"``: the drop-in's presence says the external broker is this machine's, and
``outpost-mosquitto.path`` copies the registry into the service's files and reloads it.

``add`` and ``remove`` then reload the running managed broker, if any: SIGHUP to the
PID in its pidfile, once ``/proc`` shows it is a Mosquitto on this data directory's
config (``gateway.mqtt.broker_pid``); Mosquitto rereads the password file on it, so a new
device connects at once and a removed one is refused from its next connect. Writers of
the password file take the broker files' lock, so two ``add`` at once, or one beside a
starting gateway, never lose each other's line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gateway.cli.common import CommandError, RegistryItem, add_registry_commands, settings_for
from gateway.cli.mqtt_cmd import DROP_IN_NAME
from gateway.config import Settings
from gateway.mqtt import registry
from gateway.mqtt.registry import Registry, RegistryError, checked_id, registry_of

_RELOADS = "A running managed broker is reloaded and sees the change at once."
# Where Debian's mosquitto.service reads Outpost's drop-in (mosquitto.conf's include_dir).
SYSTEM_DROP_IN = Path("/etc/mosquitto/conf.d") / DROP_IN_NAME


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    add_registry_commands(
        commands,
        common,
        command="device",
        summary="add, list or remove the devices allowed on the managed MQTT broker",
        note=f"Devices of the managed MQTT broker (mqtt_broker = managed). {_RELOADS}",
        item=RegistryItem("device_id", "ID", "its MQTT username and {device}"),
        add=("register a device and print its password once", add_device),
        listing=("print the device IDs, one per line", list_devices),
        remove=("delete a device and its password", remove_device),
    )


def add_device(args: argparse.Namespace) -> int:
    settings = settings_for(args, args.app_dir)
    data_dir = Path(settings.data_dir)
    kind = registry_of(settings.mqtt_broker, SYSTEM_DROP_IN)
    if kind == "none":
        raise CommandError(
            f"mqtt_broker is {settings.mqtt_broker!r}: devices are registered here only for "
            "the managed broker (mqtt_broker = managed) or Debian's mosquitto service with "
            f"Outpost's drop-in ({SYSTEM_DROP_IN}, see docs/install.md)"
        )
    try:
        device_id = checked_id(args.device_id)
        password = registry.add_device(data_dir, device_id)
    except RegistryError as exc:
        raise CommandError(_for_the_cli(str(exc), args.device_id)) from None
    _print_credentials(device_id, password, settings, as_json=args.json)
    _say_reloaded(settings, kind)
    return 0


def list_devices(args: argparse.Namespace) -> int:
    settings = settings_for(args, args.app_dir)
    try:
        devices = registry.list_devices(Path(settings.data_dir))
    except RegistryError as exc:
        raise CommandError(str(exc)) from None
    if not devices:
        print("no devices yet; add one with `outpost device add ID`", file=sys.stderr)
    for name in devices:
        print(name)
    return 0


def remove_device(args: argparse.Namespace) -> int:
    settings = settings_for(args, args.app_dir)
    try:
        device_id = checked_id(args.device_id)
        registry.remove_device(Path(settings.data_dir), device_id)
    except RegistryError as exc:
        raise CommandError(_for_the_cli(str(exc), args.device_id)) from None
    print(f"removed device {device_id!r}", file=sys.stderr)
    _say_reloaded(settings, registry_of(settings.mqtt_broker, SYSTEM_DROP_IN))
    return 0


def _for_the_cli(message: str, device_id: str) -> str:
    """The registry's words, with the command that helps."""
    if message.startswith("no device"):
        return f"{message} (see `outpost device list`)"
    if "already exists" in message:
        return (
            f"device {device_id!r} already exists; to give it a new password, "
            f"`outpost device remove {device_id}` first"
        )
    return message


def _say_reloaded(settings: Settings, kind: Registry) -> None:
    """SIGHUP the running managed broker of this data directory, and say which happened."""
    reloaded = registry.reload_broker(Path(settings.data_dir), kind)
    if reloaded == "system":  # Debian's mosquitto.service, as root only
        print(
            "mosquitto.service: outpost-mosquitto.path (deploy/install.sh) updates its files "
            "and reloads it; set up by hand, run `outpost mqtt config --dir` again "
            "(docs/mqtt.md)",
            file=sys.stderr,
        )
    elif reloaded == "broker":
        print("the running broker was reloaded", file=sys.stderr)
    else:
        print("no broker is running; it sees the change when it starts", file=sys.stderr)


def _print_credentials(device_id: str, password: str, settings: Settings, *, as_json: bool) -> None:
    credentials = {
        "device": device_id,
        "username": device_id,
        "password": password,
        "host": settings.mqtt_host,
        "port": settings.mqtt_port,
    }
    if as_json:
        print(json.dumps(credentials))
    else:
        for key, value in credentials.items():
            print(f"{key}: {value}")
        print("the password is shown only this once; the gateway keeps its hash", file=sys.stderr)
    if settings.mqtt_host in ("0.0.0.0", "::"):
        print(
            "note: the broker listens on every address; devices use this machine's LAN address",
            file=sys.stderr,
        )
