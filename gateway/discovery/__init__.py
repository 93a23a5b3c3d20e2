"""LAN discovery: announce a running gateway over mDNS / DNS-SD, and find gateways.

``Discovery`` is the service's "discovery" step: it announces ``gateway_plan``'s
records (``start_announcing``: Avahi's service file when ``avahi-daemon`` runs, else
python-zeroconf on the event loop) and follows their changes; ``browse`` is
``outpost discover``. ``docs/discovery.md`` tells the user's side.
"""

from gateway.discovery.addresses import WILDCARDS, lan_addresses
from gateway.discovery.announce import Announcer, AvahiPaths, Plan, Unannounced, start_announcing
from gateway.discovery.follow import Discovery
from gateway.discovery.plan import gateway_plan
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
    "WILDCARDS",
    "Announcer",
    "AvahiPaths",
    "Discovery",
    "FoundGateway",
    "Plan",
    "Unannounced",
    "gateway_announcements",
    "gateway_plan",
    "lan_addresses",
    "start_announcing",
]
