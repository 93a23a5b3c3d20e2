"""A fleet of simulated Outpost devices on paho-mqtt (issue 9, section 5).

``Fleet`` is the library API (tests, benchmarks, the demo); ``python -m
firmware_clients.simulator --help`` the command line. See README.md.
"""

from firmware_clients.simulator.credentials import Credentials, load_credentials, provision
from firmware_clients.simulator.device import ReadingFactory, SimDevice, greenhouse_reading
from firmware_clients.simulator.fleet import Fleet

__all__ = [
    "Credentials",
    "Fleet",
    "ReadingFactory",
    "SimDevice",
    "greenhouse_reading",
    "load_credentials",
    "provision",
]
