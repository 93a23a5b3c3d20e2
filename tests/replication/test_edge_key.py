"""The upstream key: from the data directory or the systemd credential; never logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from edge_upstream_kit import KEY, FakeUpstream, eventually, write_app

from gateway import Settings
from gateway.errors import ConfigError, StartError
from gateway.redact import redact
from gateway.replication.edge import checked_url, find_upstream_key
from gateway.service import Service


def test_the_systemd_credential_wins_over_the_data_directory(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "upstream_key").write_text("from-data-dir\n")
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "upstream_key").write_text("from-systemd\n")
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}
    assert find_upstream_key(tmp_path / "data", environ) == "from-systemd"
    assert find_upstream_key(tmp_path / "data", {}) == "from-data-dir"


def test_no_key_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="upstream_key"):
        find_upstream_key(tmp_path, {})


async def test_a_service_without_upstream_url_starts_no_uplink(tmp_path: Path) -> None:
    settings = Settings(port=0, data_dir=str(tmp_path / "d"), mqtt_broker="off")
    async with Service(write_app(tmp_path / "app"), settings) as service:
        assert service.uplink is None


async def test_a_service_with_upstream_url_needs_the_key(tmp_path: Path) -> None:
    settings = Settings(
        port=0, data_dir=str(tmp_path / "d"), mqtt_broker="off", upstream_url="http://x"
    )
    with pytest.raises(StartError, match="replication: .*upstream_key"):
        await Service(write_app(tmp_path / "app"), settings).start()


@pytest.mark.parametrize("worker", [True, False])
async def test_a_service_replicates_and_never_logs_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, worker: bool
) -> None:
    upstream = FakeUpstream()
    await upstream.start()
    data = tmp_path / "d"
    data.mkdir()
    (data / "upstream_key").write_text(KEY)
    settings = Settings(
        port=0,
        data_dir=str(data),
        mqtt_broker="off",
        upstream_url=upstream.url,
        uplink_worker=worker,
    )
    try:
        with caplog.at_level(logging.DEBUG):
            async with Service(write_app(tmp_path / "app"), settings) as service:
                await service.gateway.run_mutation("readings:add", {"n": 1})
                await eventually(lambda: len(upstream.applied) == 1)
                sender = type(service.uplink._sender).__name__  # noqa: SLF001
                assert sender == ("WorkerSender" if worker else "DirectSender")
                assert redact(f"key {KEY}") == "key [redacted]"
    finally:
        await upstream.stop()
    assert all(KEY not in r.getMessage() for r in caplog.records)


def test_upstream_url_must_be_http_and_is_logged_without_credentials() -> None:
    assert checked_url("https://user:secret@hub.example.net/x") == "https://hub.example.net/x"
    for bad in ("hub.example.net", "ftp://hub.example.net", "http://"):
        with pytest.raises(ConfigError, match="upstream_url"):
            checked_url(bad)
