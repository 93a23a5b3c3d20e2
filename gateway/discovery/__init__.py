"""LAN discovery: announce a running gateway over mDNS / DNS-SD, and find gateways.

``start_announcing`` is the service's "discovery" step (Avahi's service file when
``avahi-daemon`` runs, else python-zeroconf on the event loop); ``browse`` is
``outpost discover``. ``docs/discovery.md`` tells the user's side.
"""

from gateway.discovery.addresses import lan_addresses
from gateway.discovery.announce import Announcer, AvahiPaths, Plan, start_announcing
from gateway.discovery.records import (
    MQTT_TYPE,
    OUTPOST_TYPE,
    Announcement,
    FoundGateway,
    gateway_announcements,
)

__all__ = [
    "MQTT_TYPE",
    "OUTPOST_TYPE",
    "Announcement",
    "Announcer",
    "AvahiPaths",
    "FoundGateway",
    "Plan",
    "gateway_announcements",
    "lan_addresses",
    "start_announcing",
]
