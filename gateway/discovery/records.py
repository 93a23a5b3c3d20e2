"""What a gateway announces: DNS-SD service types, instance names and TXT records.

Pure data, no network: the announcers (python-zeroconf or an Avahi service file) and
``outpost discover`` share these names, so a key renamed here is renamed everywhere.
TXT keys follow RFC 6763 section 6: short ASCII keys, ``txtvers`` first, each
``key=value`` string at most 255 bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

OUTPOST_TYPE = "_outpost._tcp"
MQTT_TYPE = "_mqtt._tcp"
TXT_VERSION = "1"
# RFC 6763 section 4.1.1: an instance name is one DNS label, at most 63 bytes of UTF-8.
MAX_INSTANCE_BYTES = 63
# RFC 6763 section 6.1: each TXT string (key=value) is at most 255 bytes.
MAX_TXT_STRING_BYTES = 255


@dataclass(frozen=True)
class Announcement:
    """One DNS-SD service instance: ``instance`` of ``kind`` on ``port`` with ``txt``."""

    kind: str  # a service type without the domain, e.g. "_outpost._tcp"
    instance: str
    port: int
    txt: Mapping[str, str]


def outpost_version() -> str:
    """The installed package's version ("unknown" when run from a bare checkout)."""
    try:
        return version("outpost-gateway")
    except PackageNotFoundError:
        return "unknown"


def instance_name(name: str) -> str:
    """``name`` cut to one DNS label (whole characters only); a blank one is refused."""
    name = " ".join(name.split())
    if not name:
        raise ValueError("a gateway's announced name cannot be blank; set discovery_name")
    encoded = name.encode()[:MAX_INSTANCE_BYTES]
    return encoded.decode(errors="ignore").rstrip()


def gateway_announcements(
    *,
    name: str,
    gateway_id: str,
    api_port: int,
    site_port: int | None,
    mqtt_port: int | None,
    tls: bool = False,
    mqtt_tls_port: int | None = None,
) -> list[Announcement]:
    """The gateway's ``_outpost._tcp`` service on the API port, and ``_mqtt._tcp`` on the
    managed broker's port when it runs (``mqtt_port`` None: not announced). The HTTP
    actions' port is in the TXT record only once the site listens; ``tls=1`` says the
    API and the actions speak HTTPS, ``tls_port`` the broker's TLS listener."""
    instance = instance_name(name)
    common = {"txtvers": TXT_VERSION, "name": instance, "gateway_id": gateway_id}
    txt = {**common, "version": outpost_version(), "api_port": str(api_port)}
    if site_port is not None:
        txt["site_port"] = str(site_port)
    if tls:
        txt["tls"] = "1"
    found = [Announcement(OUTPOST_TYPE, instance, api_port, _checked(txt))]
    if mqtt_port is not None:
        mqtt_txt = dict(common)
        if mqtt_tls_port:
            mqtt_txt["tls_port"] = str(mqtt_tls_port)
        found.append(Announcement(MQTT_TYPE, instance, mqtt_port, _checked(mqtt_txt)))
    return found


def _checked(txt: Mapping[str, str]) -> dict[str, str]:
    for key, value in txt.items():
        if len(f"{key}={value}".encode()) > MAX_TXT_STRING_BYTES:
            raise ValueError(f"TXT entry {key} is longer than {MAX_TXT_STRING_BYTES} bytes")
    return dict(txt)


@dataclass(frozen=True)
class FoundGateway:
    """A gateway that answered a browse: its announced name, addresses and TXT fields."""

    name: str
    instance: str
    addresses: tuple[str, ...]
    port: int
    version: str
    gateway_id: str
    site_port: int | None
    mqtt_port: int | None = None
    tls: bool = False  # the API and HTTP actions speak HTTPS
    mqtt_tls_port: int | None = None  # the managed broker's TLS listener

    def as_json(self) -> dict[str, object]:
        """The ``outpost discover --json`` object."""
        return {
            "name": self.name,
            "instance": self.instance,
            "address": self.addresses[0] if self.addresses else None,
            "addresses": list(self.addresses),
            "port": self.port,
            "sitePort": self.site_port,
            "mqttPort": self.mqtt_port,
            "version": self.version,
            "gatewayId": self.gateway_id,
            "tls": self.tls,
            "mqttTlsPort": self.mqtt_tls_port,
        }


def found_gateway(
    instance: str, addresses: tuple[str, ...], port: int, txt: Mapping[str, str | None]
) -> FoundGateway:
    """A browse result from its SRV port, addresses and TXT record; a field a
    foreign or older announcer left out reads as unknown, never as an error."""
    return FoundGateway(
        name=txt.get("name") or instance,
        instance=instance,
        addresses=addresses,
        port=port,
        version=txt.get("version") or "unknown",
        gateway_id=txt.get("gateway_id") or "",
        site_port=port_of(txt.get("site_port")),
        tls=txt.get("tls") == "1",
    )


def port_of(text: str | None) -> int | None:
    """A TXT value as a port, None when it is not one."""
    try:
        port = int(text or "")
    except ValueError:
        return None
    return port if 0 < port < 65536 else None
