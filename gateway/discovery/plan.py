"""The gateway's announcement from what the service knows: ports, broker, addresses."""

from __future__ import annotations

from gateway.discovery.addresses import lan_addresses
from gateway.discovery.announce import Plan, Unannounced
from gateway.discovery.records import gateway_announcements


def gateway_plan(
    *,
    host: str,
    name: str,
    gateway_id: str,
    api_port: int,
    site_port: int | None,
    mqtt_host: str,
    mqtt_port: int | None,
    tls: bool = False,
    mqtt_tls_port: int | None = None,
) -> Plan | Unannounced:
    """The API (and the managed broker, when it runs: ``mqtt_port`` set, and listens on
    the LAN) announced on the addresses where ``host`` is reached from the LAN."""
    addresses = lan_addresses(host)
    if not addresses:
        return Unannounced("no address on the LAN yet (announced once an interface has one)")
    on_lan = mqtt_port is not None and bool(lan_addresses(mqtt_host))
    announcements = gateway_announcements(
        name=name,
        gateway_id=gateway_id,
        api_port=api_port,
        site_port=site_port,
        mqtt_port=mqtt_port if on_lan else None,
        tls=tls,
        mqtt_tls_port=mqtt_tls_port,
    )
    return Plan(announcements, addresses, gateway_id)
