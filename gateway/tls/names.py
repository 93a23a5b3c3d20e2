"""The names a gateway's server certificate is for, from its settings.

The same names the API answers to (``gateway.http.hosts``, the DNS-rebinding check),
so a client that may reach the gateway by a name can also verify it by that name:
``localhost`` and the loopback addresses, this machine's host name and ``<name>.local``
(mDNS), ``discovery_name`` and ``<discovery_name>.local``, the host of ``site_url``, the
exact names of ``allowed_hosts``, and ``host`` and ``mqtt_host`` when they are addresses
other than a wildcard. A name that is not a valid DNS name (``discovery_name`` may hold
spaces: DNS-SD instance names do) is left out; it could never be verified anyway.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from gateway.config import Settings

LOOPBACK = ("localhost", "127.0.0.1", "::1")
# RFC 1123 labels, lower case (names are compared lowered).
_DNS_NAME = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")


def server_names(settings: Settings) -> list[str]:
    """Every name and address the server certificate carries, without repeats."""
    names = [*LOOPBACK, *_mdns(socket.gethostname())]
    if settings.discovery_name:
        names += _mdns(settings.discovery_name)
    site_host = _site_host(settings.site_url)
    if site_host:
        names.append(site_host)
    for bound in (settings.host, settings.mqtt_host):
        if _is_specific_address(bound):
            names.append(bound)
    names += [n for n in settings.allowed_hosts.split(",") if not n.strip().startswith((".", "*"))]
    cleaned = (n.strip().lower().rstrip(".").strip("[]") for n in names)
    return list(dict.fromkeys(n for n in cleaned if n and (_is_address(n) or _is_dns(n))))


def _mdns(name: str) -> list[str]:
    name = name.strip().lower().rstrip(".")
    return [name, f"{name}.local"] if name and not name.endswith(".local") else [name]


def _site_host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def _is_specific_address(host: str) -> bool:
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _is_dns(name: str) -> bool:
    return len(name) <= 253 and _DNS_NAME.match(name) is not None
