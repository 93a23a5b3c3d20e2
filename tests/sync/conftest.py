"""Sync fixtures: a served gateway on an inline app and a raw protocol client on it.

The tests against the official clients (npm ``ConvexClient`` under Node, PyPI
``convex.ConvexClient``) reuse the compat tier's ``outpost serve`` fixture and its npm
install cache (``tests/compat/conftest.py``): imported here, not written twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from compat.conftest import Server, convex_npm, run_node, server  # noqa: F401 - fixtures
from sync.sync_kit import NOTES, SCHEMA, SyncApi, serving


@pytest.fixture
def sync_app(make_app: Any) -> Path:
    return make_app(schema=SCHEMA, notes=NOTES)  # type: ignore[no-any-return]


@pytest.fixture
async def sync_api(sync_app: Path, tmp_path: Path) -> AsyncIterator[SyncApi]:
    async with serving(sync_app, tmp_path / "data") as api:
        yield api
