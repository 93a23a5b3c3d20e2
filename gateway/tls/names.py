"""The names a gateway's server certificate is for, from its settings.

The names the API answers to (``gateway.known_names``, shared with the DNS-rebinding
check), so a client that may reach the gateway by a name can also verify it by that
name: those without the ``.suffix`` patterns of ``allowed_hosts``, the loopback
addresses, and ``host`` and ``mqtt_host`` when they are addresses other than a
wildcard. A name that is not a valid DNS name (``discovery_name`` may hold spaces:
DNS-SD instance names do) is left out; it could never be verified anyway.
"""

from __future__ import annotations

import ipaddress
import re

from gateway.config import Settings
from gateway.known_names import is_address, known_names

LOOPBACK = ("localhost", "127.0.0.1", "::1")
# RFC 1123 labels, lower case (names are compared lowered).
_DNS_NAME = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")


def server_names(settings: Settings) -> list[str]:
    """Every name and address the server certificate carries, without repeats."""
    names = [*LOOPBACK, *(n for n in known_names(settings) if not n.startswith((".", "*")))]
    for bound in (settings.host, settings.mqtt_host):
        if _is_specific_address(bound):
            names.append(bound)
    cleaned = (n.strip().lower().rstrip(".").strip("[]") for n in names)
    return list(dict.fromkeys(n for n in cleaned if n and (is_address(n) or _is_dns(n))))


def _is_specific_address(host: str) -> bool:
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _is_dns(name: str) -> bool:
    return len(name) <= 253 and _DNS_NAME.match(name) is not None
