"""Dashboard fixtures: the readings app served with an admin socket; one Chromium per
module (``browser_kit``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from admin_socket_kit import short_dir
from dashboard.browser_kit import chromium_binary_fixture, chromium_url_fixture  # noqa: F401
from dashboard.dashboard_kit import READINGS, SCHEMA, Served, serving


@pytest.fixture
def data_dir() -> Iterator[Path]:
    with short_dir() as path:
        yield path / "data"


@pytest.fixture
async def served(make_app: Any, data_dir: Path) -> AsyncIterator[Served]:
    app = make_app(schema=SCHEMA, readings=READINGS)
    async with serving(app, data_dir) as server:
        yield server
