"""Which of this machine's addresses to announce for a server bound to ``host``.

Only what a LAN peer can reach is worth announcing: a server bound to loopback (the
default ``127.0.0.1``) announces nothing, one bound to a wildcard announces every
IPv4 address of the machine but loopback, one bound to an address announces that one.
IPv4 only for now: python-zeroconf would also need an interface index per IPv6 address,
and every LAN that has IPv6 here has IPv4 too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

import ifaddr  # python-zeroconf's own dependency, its recommended way to list addresses

WILDCARDS = ("", "0.0.0.0", "::")


def machine_ipv4_addresses() -> list[str]:
    """Every IPv4 address on this machine's interfaces (loopback included)."""
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if ip.is_IPv4 and isinstance(ip.ip, str) and ip.ip not in found:
                found.append(ip.ip)
    return found


def lan_addresses(
    host: str, machine: Callable[[], Iterable[str]] = machine_ipv4_addresses
) -> list[str]:
    """The IPv4 addresses a LAN peer reaches a server bound to ``host`` at; empty when
    only this machine can (loopback) or ``host`` is a name."""
    if host in WILDCARDS:
        return [a for a in machine() if _routable(ipaddress.IPv4Address(a))]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return []  # a host name: announcing what it resolves to now could be wrong later
    if isinstance(address, ipaddress.IPv4Address) and _routable(address):
        return [host]
    return []


def _routable(address: ipaddress.IPv4Address) -> bool:
    return not (address.is_loopback or address.is_unspecified or address.is_multicast)
