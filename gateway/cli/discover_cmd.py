"""``outpost discover``: list the gateways that announce themselves on the LAN (mDNS).

It browses ``_outpost._tcp`` (and ``_mqtt._tcp``, to show a gateway's managed broker)
for ``--timeout`` seconds and prints one line per gateway, or a JSON array with
``--json``. Nothing found is one line on stderr saying what to check, and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING

from gateway.cli.common import CommandError, UsageError

if TYPE_CHECKING:
    from gateway.discovery import FoundGateway

DEFAULT_TIMEOUT_S = 3.0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    discover = commands.add_parser(
        "discover",
        help="list Outpost gateways on the LAN (mDNS)",
        description="Browse the LAN for Outpost gateways and list them.",
    )
    discover.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to listen for answers (default {DEFAULT_TIMEOUT_S:g})",
    )
    discover.add_argument("--json", action="store_true", help="one JSON array of objects")
    discover.set_defaults(handler=discover_gateways)


def discover_gateways(args: argparse.Namespace) -> int:
    if not 0 < args.timeout <= 600:
        raise UsageError(
            f"--timeout must be more than 0 and at most 600 seconds, got {args.timeout:g}"
        )
    from gateway.discovery.browse import browse  # python-zeroconf only for this command

    try:
        found = asyncio.run(browse(args.timeout))
    except OSError as exc:
        raise CommandError(
            f"cannot listen for mDNS answers on UDP port 5353 ({exc.strerror or exc}); "
            "another program may hold it alone: `ss -lunp 'sport = :5353'` names it"
        ) from None
    if args.json:
        print(json.dumps([gateway.as_json() for gateway in found], indent=2))
    else:
        for gateway in found:
            print(_line(gateway))
    if not found:
        print(
            f"outpost: no gateway answered within {args.timeout:g} s. A gateway is announced "
            'when it serves the LAN (host = "0.0.0.0") with discovery on, and mDNS '
            "(UDP 5353, multicast) must pass between it and this machine",
            file=sys.stderr,
        )
        return 1
    return 0


def _line(gateway: FoundGateway) -> str:
    address = gateway.addresses[0] if gateway.addresses else "?"
    parts = [gateway.name, f"{address}:{gateway.port}", f"v{gateway.version}"]
    parts.append(gateway.gateway_id or "-")  # an announcer that is not Outpost's
    if gateway.site_port is not None:
        parts.append(f"actions :{gateway.site_port}")
    if gateway.mqtt_port is not None:
        parts.append(f"mqtt :{gateway.mqtt_port}")
    if gateway.mqtt_tls_port is not None:
        parts.append(f"mqtts :{gateway.mqtt_tls_port}")
    if gateway.tls:
        parts.append("https")  # the API and actions: https:// and wss://
    return "  ".join(parts)
