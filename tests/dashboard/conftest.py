"""Dashboard fixtures: the readings app served with an admin socket; one Chromium per
module (``browser_kit``); tests/mqtt's kits importable."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from admin_socket_kit import short_dir
from dashboard.browser_kit import chromium_binary_fixture, chromium_url_fixture  # noqa: F401
from dashboard.dashboard_kit import READINGS, SCHEMA, Served, serving

# The MQTT kits live in tests/mqtt, which pytest puts on sys.path only when it imports a
# test from there (tests/firmware/conftest.py does the same).
MQTT_TESTS = str(Path(__file__).resolve().parents[1] / "mqtt")
if MQTT_TESTS not in sys.path:
    sys.path.insert(0, MQTT_TESTS)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    with short_dir() as path:
        yield path / "data"


@pytest.fixture
async def served(make_app: Any, data_dir: Path) -> AsyncIterator[Served]:
    app = make_app(schema=SCHEMA, readings=READINGS)
    async with serving(app, data_dir) as server:
        yield server
