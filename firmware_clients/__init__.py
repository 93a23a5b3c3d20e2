"""Device-side clients for Outpost (issue 9, section 5).

``micropython/`` is the board client (its logic also runs under CPython with the umqtt
shim in ``micropython/host``: ``use_micropython_code()`` puts both on ``sys.path``),
``arduino/`` the ESP32 sketch and ``simulator/`` a device fleet on paho.
"""

from __future__ import annotations

import sys
from pathlib import Path

MICROPYTHON_DIR = Path(__file__).resolve().parent / "micropython"
MICROPYTHON_HOST_DIR = MICROPYTHON_DIR / "host"


def use_micropython_code() -> None:
    """Make the board modules (``outpost_client`` ...) and the ``umqtt`` shim importable."""
    for directory in (MICROPYTHON_HOST_DIR, MICROPYTHON_DIR):
        if str(directory) not in sys.path:
            sys.path.insert(0, str(directory))
