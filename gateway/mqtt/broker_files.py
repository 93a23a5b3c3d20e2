"""The managed Mosquitto broker's files: its config, password file and ACL.

Everything lives in ``<data dir>/mosquitto/`` (mode 0700, files 0600): the config, the
password file (hashes only, see ``passwords``), the ACL and Mosquitto's own persistence
database. The texts come from plain data so that ``outpost mqtt config`` can print the
very files the managed broker runs with.

Identity comes from the topic, guaranteed by the ACL (issue 9, section 2): the route
segment ``{device}`` becomes Mosquitto's ``%u`` (the username), so a device may publish
only to its own ingest topics and read only its own publish topics, its ack topic and its
RPC replies. The bridge user alone reads and writes everything; anonymous access is off.

The config is tuned for no loss (issue 9, section 1); each number is argued beside it in
``_config_lines``. Every option exists in Mosquitto 2.0.11, Debian's version, which exits
at once on an option it does not know; the tests start the real broker on these files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.mqtt.passwords import check_username, password_file_text
from gateway.mqtt.topics import Placeholder, parse_segments
from gateway.private_files import write_private_file

BROKER_DIR_NAME = "mosquitto"
CONFIG_NAME = "mosquitto.conf"
PASSWORD_FILE_NAME = "passwords"
ACL_FILE_NAME = "acl"
DIR_MODE = 0o700
# The gateway's own MQTT user (the bridge); never a device ID.
BRIDGE_USER = "outpost-bridge"

# Issue 9 section 3 and 4: the gateway's own topic trees per device.
ACK_TOPIC = "outpost/ack/{device}"
CALL_TREE = "outpost/call/{device}/#"
# Where a device asks for RPC answers (its MQTT 5 Response Topic): its own tree, apart
# from the call tree so that the bridge never receives its own answers as calls.
REPLY_TREE = "outpost/reply/{device}/#"

# Mosquitto 2.0 (mosquitto.conf(5)). Why each value, in ``_config_lines``.
AUTOSAVE_CHANGES = 1000
MAX_QUEUED_BYTES = 64 * 1024 * 1024
MAX_PACKET_BYTES = 1024 * 1024


@dataclass(frozen=True)
class BrokerTls:
    """A TLS listener on ``port`` (``mqtt_tls_port``), presenting ``cert`` and ``key``
    (PEM files the broker's user can read)."""

    port: int
    cert: Path
    key: Path


@dataclass(frozen=True)
class BrokerSpec:
    """What the managed broker's files are made from.

    ``users`` maps every username (the bridge's and each device's) to its stored
    ``$7$`` hash. ``ingest_patterns`` are the topics devices publish to and
    ``publish_patterns`` the topics they subscribe to, in the routes' form
    (``sensors/{device}/temperature``). ``run_as_user``: when the gateway runs as root,
    Mosquitto would otherwise drop to the ``mosquitto`` user, which cannot read the
    gateway's 0600 files; pass the gateway's own user (no effect when not root).
    ``tls``: a second listener, on the same host, for MQTT over TLS.
    """

    host: str
    port: int
    data_dir: Path
    bridge_user: str
    users: Mapping[str, str]
    ingest_patterns: Sequence[str] = ()
    publish_patterns: Sequence[str] = ()
    run_as_user: str | None = None
    tls: BrokerTls | None = None

    @property
    def directory(self) -> Path:
        """The directory holding the config, password file, ACL and persistence."""
        return self.data_dir.absolute() / BROKER_DIR_NAME  # Mosquitto's cwd is not ours


def broker_file_texts(spec: BrokerSpec) -> dict[str, str]:
    """File name -> text of the broker's config, password file and ACL."""
    check_username(spec.bridge_user)
    if spec.bridge_user not in spec.users:
        raise ValueError(f"the bridge user {spec.bridge_user!r} has no password entry")
    if not 0 < spec.port < 65536:
        raise ValueError(f"MQTT port {spec.port} is not between 1 and 65535")
    if spec.tls is not None and (not 0 < spec.tls.port < 65536 or spec.tls.port == spec.port):
        raise ValueError(f"MQTT TLS port {spec.tls.port} is not a port of its own (1-65535)")
    return {
        CONFIG_NAME: config_text(spec),
        PASSWORD_FILE_NAME: password_file_text(spec.users),
        ACL_FILE_NAME: acl_text(spec.bridge_user, spec.ingest_patterns, spec.publish_patterns),
    }


def write_broker_files(spec: BrokerSpec) -> dict[str, Path]:
    """Write the broker's files into ``spec.directory`` (0700), each atomically (0600)."""
    texts = broker_file_texts(spec)  # validate everything before touching the disk
    directory = spec.directory
    directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(directory, DIR_MODE)  # mkdir's mode is masked by the umask; and it may exist
    # The config last: it names the other two, which must be whole when a broker reads it.
    order = [PASSWORD_FILE_NAME, ACL_FILE_NAME, CONFIG_NAME]
    paths = {name: directory / name for name in order}
    for name in order:
        write_private_file(paths[name], texts[name])
    return paths


def config_text(spec: BrokerSpec) -> str:
    """The ``mosquitto.conf`` of the managed broker."""
    return "\n".join(_config_lines(spec)) + "\n"


def _config_lines(spec: BrokerSpec) -> list[str]:
    directory = spec.directory
    lines = [
        "# Generated by Outpost (gateway/mqtt/broker_files.py); rewritten on every start.",
        "# Must come first (mosquitto.conf(5)): security settings apply to every listener.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {directory / PASSWORD_FILE_NAME}",
        f"acl_file {directory / ACL_FILE_NAME}",
    ]
    if spec.run_as_user is not None:
        lines.append(f"user {check_username(spec.run_as_user)}")
    lines += [
        "",
        "# Persistence: queued QoS 1 messages, sessions and retained messages survive",
        "# a broker restart. The trailing slash is for 1.x, which appends the file name",
        "# as text; 2.0 adds its own and a double slash is harmless.",
        "persistence true",
        f"persistence_location {directory}/",
        "persistence_file mosquitto.db",
        "# With autosave_on_changes, autosave_interval counts changes (subscriptions,",
        "# retained and queued messages), not seconds: save after this many. The stock",
        "# 1800 s could lose half an hour; each save rewrites the whole database, so not",
        "# every change either (SD-card wear: at 100, the broker wrote 7.6 kB per reading",
        "# under bench/mqtt_ingest.py, three times the store's own; at 1000, 0.7 kB).",
        "# Devices keep readings until the gateway's ack covers them, and the gateway",
        "# publishes its retained topics again on reconnect, so what a crash loses here",
        "# is sent again, never lost.",
        "autosave_on_changes true",
        f"autosave_interval {AUTOSAVE_CHANGES}",
        "",
        "# Queues limited by bytes, not by the stock 1000 messages, which silently drop",
        "# what publishers had been acked for when the bridge falls behind (issue 9).",
        "# 64 MiB per client is ~500,000 small CBOR readings: hours of a fleet while the",
        "# gateway is stopped, within a Pi's memory (Mosquitto queues in RAM).",
        "max_queued_messages 0",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        "# A whole MQTT packet above this disconnects the sender (and MQTT 5 clients are",
        "# told it in CONNACK). Far above a reading or a config, far below the 256 MB",
        "# protocol maximum that would let one client exhaust the broker's memory.",
        f"max_packet_size {MAX_PACKET_BYTES}",
        "",
        "# The gateway supervises the broker and relays its output to its own log.",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "log_timestamp false",
        "",
        f"listener {spec.port} {spec.host}",
    ]
    if spec.tls is not None:
        lines += [
            "",
            "# MQTT over TLS (mqtt_tls_port). With per_listener_settings false the security",
            "# settings above cover this listener too; certfile and keyfile are its own.",
            "# No cafile: devices authenticate with their password, not a certificate.",
            "# TLS 1.2 and 1.3, Mosquitto's default.",
            f"listener {spec.tls.port} {spec.host}",
            f"certfile {spec.tls.cert}",
            f"keyfile {spec.tls.key}",
        ]
    return lines


def acl_text(
    bridge_user: str, ingest_patterns: Iterable[str], publish_patterns: Iterable[str]
) -> str:
    """The ACL: the bridge reads and writes all; each device only its own topics."""
    rules: list[tuple[str, str]] = []
    for pattern in ingest_patterns:
        rules.append(("write", acl_topic(pattern)))
    for pattern in publish_patterns:
        # A publish topic without {device} (``site/summary``) is for every device.
        rules.append(("read", acl_topic(pattern, shared="{device}" not in pattern)))
    rules += [
        ("read", acl_topic(ACK_TOPIC)),
        ("write", acl_topic(CALL_TREE, allow_tail=True)),
        ("read", acl_topic(REPLY_TREE, allow_tail=True)),
    ]
    lines = [
        "# Generated by Outpost (gateway/mqtt/broker_files.py).",
        "# Devices: %u is the username, which is the route segment {device}.",
    ]
    lines += [f"pattern {access} {topic}" for access, topic in dict.fromkeys(rules)]
    lines += [
        "",
        "# The gateway's bridge, the only user with wider rights.",
        f"user {check_username(bridge_user)}",
        "topic readwrite #",
    ]
    return "\n".join(lines) + "\n"


def acl_topic(pattern: str, *, allow_tail: bool = False, shared: bool = False) -> str:
    """A route pattern as an ACL ``pattern`` topic: ``{device}`` -> ``%u``, ``{x}`` -> ``+``.

    ``allow_tail`` admits a final ``#`` (the gateway's own trees, never a route's);
    ``shared`` admits a pattern without ``{device}`` (a publish topic every device reads).
    """
    segments = pattern.split("/")
    if allow_tail and segments[-1] == "#":
        return "/".join([*_acl_segments(pattern, segments[:-1], shared), "#"])
    return "/".join(_acl_segments(pattern, segments, shared))


def _acl_segments(pattern: str, segments: list[str], shared: bool = False) -> list[str]:
    """The ACL segments of a route pattern, parsed as routes are (``topics``), plus what
    only the ACL needs: a ``{device}`` to tie the topic to a username, no ``%``."""
    if pattern.startswith("$"):
        raise ValueError(f"topic pattern {pattern!r} starts with '$' (the broker's own tree)")
    if "%" in pattern:
        raise ValueError(
            f"topic pattern {pattern!r}: '%' would be read by Mosquitto's ACL as a "
            "substitution (%u, %c)"
        )
    try:
        parsed = parse_segments("/".join(segments))
    except ValueError as exc:
        raise ValueError(f"topic pattern {pattern!r}: {exc}") from None
    names = [seg.name if isinstance(seg, Placeholder) else None for seg in parsed]
    if "device" not in names and not shared:
        raise ValueError(
            f"topic pattern {pattern!r} has no {{device}} segment: the ACL can only tie a "
            "topic to one device through it, e.g. 'sensors/{device}/temperature'"
        )
    return [
        segment if name is None else ("%u" if name == "device" else "+")
        for segment, name in zip(segments, names, strict=True)
    ]
