"""Firmware tests: the MQTT kit of tests/mqtt and the board code become importable.

``mosquitto_kit`` lives in tests/mqtt, which pytest puts on ``sys.path`` only when it
imports a test from there; these tests run alone too, so the directory is added here.
The board code is imported by plain name (``outpost_client``), as on the board.
"""

from __future__ import annotations

import sys
from pathlib import Path

from firmware_clients import use_micropython_code

MQTT_TESTS = Path(__file__).resolve().parent.parent / "mqtt"
if str(MQTT_TESTS) not in sys.path:
    sys.path.insert(0, str(MQTT_TESTS))
use_micropython_code()
