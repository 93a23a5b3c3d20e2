"""The "discovery" step of the process owner on this machine's own network: a gateway
that only this machine can reach is not announced (and no packet is sent)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway import Settings
from gateway.service import Service

GREENHOUSE = Path(__file__).resolve().parents[2] / "examples" / "greenhouse"


@pytest.mark.parametrize("discovery", [True, False])
async def test_a_gateway_on_loopback_is_not_announced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, discovery: bool
) -> None:
    settings = Settings(
        port=0, data_dir=str(tmp_path / "data"), mqtt_broker="off", discovery=discovery
    )
    with caplog.at_level(logging.INFO, logger="gateway.service"):
        async with Service(GREENHOUSE, settings):
            pass
    said = [r.getMessage() for r in caplog.records if "announced" in r.getMessage()]
    if discovery:
        assert said == [
            "not announced on the LAN: host 127.0.0.1 is no address a LAN peer reaches "
            '(loopback, or a name); host = "0.0.0.0" serves the LAN'
        ]
    else:
        assert said == []
