"""A device added by ``outpost device add`` connects to a real Mosquitto on the files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mosquitto_kit import connack_until, current_user, running_broker, session

from gateway.cli import main
from gateway.mqtt.broker_files import BRIDGE_USER, BROKER_DIR_NAME, PASSWORD_FILE_NAME, BrokerSpec
from gateway.mqtt.passwords import generate_password, hash_password, read_password_file


def test_an_added_device_connects_and_a_removed_one_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app, data = tmp_path / "app", tmp_path / "data"
    app.mkdir()
    flags = [str(app), "--data-dir", str(data)]
    assert main(["device", "add", "d1", "--json", *flags]) == 0
    password = json.loads(capsys.readouterr().out)["password"]
    registry = data / BROKER_DIR_NAME / PASSWORD_FILE_NAME
    bridge_password = generate_password()

    def make_spec(port: int) -> BrokerSpec:
        # What a managed broker would start with: the registry plus the bridge's entry.
        users = {**read_password_file(registry), BRIDGE_USER: hash_password(bridge_password)}
        return BrokerSpec("127.0.0.1", port, data, BRIDGE_USER, users, run_as_user=current_user())

    with running_broker(make_spec, tmp_path) as broker:
        with session(broker.port, "d1", password) as device:
            assert not device.connack.is_failure, broker.log()
        assert main(["device", "remove", "d1", *flags]) == 0
        assert set(read_password_file(registry)) == {BRIDGE_USER}  # the bridge stays
        broker.reload()  # not a managed broker (no pidfile): the command cannot reload it
        connack_until(broker.port, "d1", password, refused=True)
        with session(broker.port, BRIDGE_USER, bridge_password) as bridge:
            assert not bridge.connack.is_failure, broker.log()
