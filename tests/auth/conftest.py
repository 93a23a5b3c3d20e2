"""Auth fixtures: a running test issuer (``auth_issuer.Issuer``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from auth.auth_issuer import Issuer


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    issuer = Issuer()
    await issuer.start()
    try:
        yield issuer
    finally:
        await issuer.stop()
