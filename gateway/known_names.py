"""The names a gateway is known by, from its settings: what the API answers to
(``gateway.http.hosts``, the DNS-rebinding check) and what its TLS certificate is for
(``gateway.tls.names``), kept as one list so the two never disagree.

``localhost``, this machine's host name and ``<name>.local`` (mDNS), ``discovery_name``
and ``<discovery_name>.local`` (what ``outpost discover`` shows), the host of
``site_url``, and every entry of ``allowed_hosts`` (``.suffix`` and ``*`` patterns
included: the caller decides what to make of them). Lowered, without a trailing dot.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from gateway.config import Settings


def normal(name: str) -> str:
    return name.strip().lower().rstrip(".")


def known_names(settings: Settings) -> list[str]:
    names = ["localhost", *_mdns(socket.gethostname())]
    if settings.discovery_name:
        names += _mdns(settings.discovery_name)
    site_host = _site_host(settings.site_url)
    if site_host:
        names.append(site_host)
    names += settings.allowed_hosts.split(",")
    cleaned = (normal(n) for n in names)
    return list(dict.fromkeys(n for n in cleaned if n))


def is_address(name: str) -> bool:
    """Whether ``name`` is an IP literal (IPv6 without brackets)."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _mdns(name: str) -> list[str]:
    name = normal(name)
    return [name, f"{name}.local"] if name and not name.endswith(".local") else [name]


def _site_host(url: str) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None
