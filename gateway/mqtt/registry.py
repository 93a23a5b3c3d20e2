"""The device registry: the managed broker's password file, read and changed whole.

What ``outpost device add|list|remove`` and the dashboard share. The file is
``<data dir>/mosquitto/passwords`` (hashes only, ``gateway.mqtt.passwords``); writers
hold the broker files' lock, so two changes at once never lose each other's line.
After a change the running managed broker is sent SIGHUP (it rereads the file), or
Debian's ``mosquitto.service`` follows through ``outpost-mosquitto.path``.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Final, Literal

from gateway.errors import OutpostError
from gateway.mqtt.broker_files import BRIDGE_USER, PASSWORD_FILE_NAME
from gateway.mqtt.broker_pid import broker_directory, signal_broker
from gateway.mqtt.passwords import (
    check_username,
    generate_password,
    hash_password,
    read_password_file,
    write_password_file,
)
from gateway.private_files import files_lock
from gateway.store.datadir import make_private_dir

# Where Debian's mosquitto.service reads Outpost's drop-in (mosquitto.conf's include_dir).
SYSTEM_DROP_IN: Final = Path("/etc/mosquitto/conf.d") / "outpost.conf"
Registry = Literal["managed", "system", "none"]
Reloaded = Literal["broker", "system", "none"]


class RegistryError(OutpostError, ValueError):
    """A device ID that cannot be added or removed, or a registry that cannot be read."""


def registry_of(mqtt_broker: str, drop_in: Path = SYSTEM_DROP_IN) -> Registry:
    """Where this machine's broker takes its devices from: the managed broker's file,
    Debian's mosquitto with Outpost's drop-in (the same file), or nowhere here."""
    if mqtt_broker == "managed":
        return "managed"
    if mqtt_broker == "external" and drop_in.exists():
        return "system"
    return "none"


def password_path(data_dir: Path, *, create: bool = False) -> Path:
    """The password file; its directories made 0700 when ``create``."""
    directory = broker_directory(data_dir)
    if create:
        make_private_dir(data_dir)
        make_private_dir(directory)
    return directory / PASSWORD_FILE_NAME


def checked_id(device_id: str) -> str:
    """A device ID usable as username and topic segment, and not the bridge's name."""
    try:
        check_username(device_id)
    except ValueError as exc:
        raise RegistryError(str(exc)) from None
    if device_id == BRIDGE_USER:
        raise RegistryError(f"{BRIDGE_USER!r} is the gateway's own MQTT user, not a device ID")
    return device_id


def list_devices(data_dir: Path) -> list[str]:
    """The registered device IDs, sorted (the bridge's own user left out)."""
    return sorted(name for name in _read(password_path(data_dir)) if name != BRIDGE_USER)


def add_device(data_dir: Path, device_id: str) -> str:
    """Register ``device_id`` with a new random password; returns the password (only its
    hash is kept). ``RegistryError`` if it exists already."""
    device_id = checked_id(device_id)
    path = password_path(data_dir, create=True)
    password = generate_password()
    with files_lock(path.parent):
        entries = _read(path)
        if device_id in entries:
            raise RegistryError(
                f"device {device_id!r} already exists; to give it a new password, "
                "remove it first, then add it again"
            )
        write_password_file(path, {**entries, device_id: hash_password(password)})
    return password


def remove_device(data_dir: Path, device_id: str) -> None:
    """Delete ``device_id`` and its password; ``RegistryError`` if there is none."""
    device_id = checked_id(device_id)
    path = password_path(data_dir)
    if not path.exists():
        raise RegistryError(f"no device {device_id!r}")
    with files_lock(path.parent):
        entries = _read(path)
        if device_id not in entries:
            raise RegistryError(f"no device {device_id!r}")
        del entries[device_id]
        write_password_file(path, entries)


def reload_broker(data_dir: Path, registry: Registry) -> Reloaded:
    """Tell the broker the registry changed: SIGHUP the running managed broker of
    ``data_dir`` ("broker"); Debian's service follows by itself ("system"); "none" when
    no broker runs (it reads the file when it starts)."""
    if registry == "system":
        return "system"
    return "broker" if signal_broker(data_dir, signal.SIGHUP) is not None else "none"


def _read(path: Path) -> dict[str, str]:
    try:
        return read_password_file(path)
    except ValueError as exc:
        raise RegistryError(f"{exc} (fix or move the file)") from None
