"""The device fleet simulator on a real broker, with the stand-in acker as the gateway."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from firmware_kit import DeviceBroker, StandInAcker, device_broker, stand_in_acker, wait_until

from firmware_clients.simulator import Fleet, load_credentials, provision
from gateway.mqtt.broker_files import BRIDGE_USER
from gateway.mqtt.passwords import read_password_file

REPO = Path(__file__).resolve().parents[2]
GREENHOUSE = REPO / "examples" / "greenhouse"
DEVICES = [f"sim-{i}" for i in range(5)]
COVER_DEADLINE_S = 10.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[DeviceBroker]:
    with device_broker(tmp_path, DEVICES) as running:
        yield running


@pytest.fixture
def acker(broker: DeviceBroker) -> Iterator[StandInAcker]:
    with stand_in_acker(broker.port, broker.passwords[BRIDGE_USER]) as running:
        yield running


def fleet_of(broker: DeviceBroker, **options: object) -> Fleet:
    devices = [(d, broker.passwords[d]) for d in DEVICES]
    return Fleet(devices, "127.0.0.1", broker.port, seed=7, **options)  # type: ignore[arg-type]


def assert_every_reading_arrived(acker: StandInAcker, fleet: Fleet, count: int) -> None:
    boots = fleet.boots
    for device in DEVICES:
        assert set(acker.seqs(device)) == set(range(1, count + 1)), device
        assert {r.reading["boot"] for r in acker.received if r.device == device} == {boots[device]}


def test_every_reading_of_every_device_is_covered(
    broker: DeviceBroker, acker: StandInAcker
) -> None:
    with fleet_of(broker, rate_hz=200.0, max_readings=40) as fleet:
        wait_until(lambda: all(n == 40 for n in fleet.made.values()), "every reading made")
        assert fleet.wait_covered(COVER_DEADLINE_S), fleet.totals()
        assert fleet.covered == dict.fromkeys(DEVICES, 40)
        assert fleet.published == dict.fromkeys(DEVICES, 40)
    assert_every_reading_arrived(acker, fleet, 40)
    assert fleet.totals()["dropped"] == 0
    assert not [t for t in threading.enumerate() if t.name == "outpost-sim-fleet"]


def test_as_fast_as_acked_keeps_a_window(broker: DeviceBroker, acker: StandInAcker) -> None:
    with fleet_of(broker, rate_hz=math.inf, window=20, max_readings=300) as fleet:
        wait_until(lambda: all(n == 300 for n in fleet.made.values()), "every reading made")
        assert fleet.wait_covered(COVER_DEADLINE_S), fleet.totals()
    assert_every_reading_arrived(acker, fleet, 300)


def test_the_window_waits_for_acks(broker: DeviceBroker, acker: StandInAcker) -> None:
    acker.pause()
    with fleet_of(broker, rate_hz=math.inf, window=20) as fleet:
        wait_until(lambda: all(len(acker.seqs(d)) == 20 for d in DEVICES), "a window each")
        assert fleet.made == dict.fromkeys(DEVICES, 20)
        acker.resume()
        wait_until(lambda: all(n >= 40 for n in fleet.made.values()), "the next window")


def test_a_dropped_connection_resends_what_is_not_covered(
    broker: DeviceBroker, acker: StandInAcker
) -> None:
    acker.pause()
    with fleet_of(broker, rate_hz=500.0, max_readings=5) as fleet:
        wait_until(lambda: all(len(acker.seqs(d)) >= 5 for d in DEVICES), "five readings each")
        fleet.drop()
        wait_until(lambda: all(n == 5 for n in fleet.resent.values()), "five resent each")
        assert all(n >= 1 for n in fleet.disconnects.values())
        acker.resume()
        assert fleet.wait_covered(COVER_DEADLINE_S), fleet.totals()
    for device in DEVICES:
        assert sorted(acker.seqs(device)) == sorted([1, 2, 3, 4, 5] * 2)


def test_random_disconnects_lose_nothing(broker: DeviceBroker, acker: StandInAcker) -> None:
    options = {"rate_hz": 100.0, "max_readings": 100, "disconnect_every_s": 0.1}
    with fleet_of(broker, reconnect_delay_s=0.02, **options) as fleet:
        wait_until(lambda: all(n == 100 for n in fleet.made.values()), "every reading made")
        assert fleet.wait_covered(COVER_DEADLINE_S), fleet.totals()
        assert fleet.totals()["disconnects"] >= len(DEVICES)
    assert_every_reading_arrived(acker, fleet, 100)


def test_a_broker_restart_loses_nothing(broker: DeviceBroker, acker: StandInAcker) -> None:
    with fleet_of(broker, rate_hz=50.0, max_readings=60) as fleet:
        wait_until(lambda: sum(fleet.covered.values()) >= 20, "some readings acked")
        broker.restart()
        wait_until(lambda: all(n == 60 for n in fleet.made.values()), "every reading made")
        assert fleet.wait_covered(COVER_DEADLINE_S), fleet.totals()
    assert_every_reading_arrived(acker, fleet, 60)


def test_json_readings_with_skewed_clocks(broker: DeviceBroker, acker: StandInAcker) -> None:
    skew_s = 3600.0
    options = {"rate_hz": 100.0, "max_readings": 10, "codec": "json"}
    with fleet_of(broker, clock_skew_s=skew_s, time_field="ts", **options) as fleet:
        wait_until(lambda: all(n == 10 for n in fleet.made.values()), "every reading made")
        assert fleet.wait_covered(COVER_DEADLINE_S) and sum(fleet.covered.values()) == 50
    now_ms = time.time() * 1000
    offsets = {r.device: r.reading["ts"] - now_ms for r in acker.received}
    assert all(-skew_s * 1000 - 5000 < off < skew_s * 1000 for off in offsets.values())
    assert len({round(off / 1000) for off in offsets.values()}) > 1  # each its own clock
    assert {"celsius", "humidity", "ts", "seq", "boot"} == set(acker.received[0].reading)


def test_configs_reach_their_device_and_clearing_is_none(
    broker: DeviceBroker, acker: StandInAcker
) -> None:
    acker.publish_config("sim-1", b'{"interval_s": 5}')
    with fleet_of(broker, rate_hz=1.0, max_readings=1) as fleet:
        wait_until(lambda: fleet.configs("sim-1") == [{"interval_s": 5}], "the retained config")
        acker.publish_config("sim-1", b"")
        wait_until(lambda: fleet.configs("sim-1")[-1:] == [None], "the cleared config")
        assert fleet.configs("sim-2") == []


def test_wrong_credentials_do_not_stop_the_others(
    broker: DeviceBroker, acker: StandInAcker
) -> None:
    devices = [("sim-0", broker.passwords["sim-0"]), ("sim-1", "wrong")]
    with Fleet(devices, "127.0.0.1", broker.port, rate_hz=100.0, max_readings=5) as fleet:
        wait_until(lambda: fleet.covered["sim-0"] == 5, "sim-0's readings acked")
        wait_until(lambda: fleet.made["sim-1"] == 5, "sim-1's readings made")
        assert fleet.covered["sim-1"] == 0 and fleet.published["sim-1"] == 0
        assert fleet.error is None


def test_provisioning_and_the_command_line(tmp_path: Path) -> None:
    creds = tmp_path / "creds.jsonl"
    data_dir = tmp_path / "data"
    first = provision(["sim-a", "sim-b"], GREENHOUSE, data_dir, creds)
    assert stat.S_IMODE(os.stat(creds).st_mode) == 0o600
    assert provision(["sim-a", "sim-b"], GREENHOUSE, data_dir, creds) == first  # reused
    assert load_credentials(creds) == first
    hashed = read_password_file(data_dir / "mosquitto" / "passwords")
    with (
        device_broker(tmp_path / "run", [], hashed) as broker,
        stand_in_acker(broker.port, broker.passwords[BRIDGE_USER]) as acker,
    ):
        command = [sys.executable, "-m", "firmware_clients.simulator", "--credentials", str(creds)]
        command += ["--port", str(broker.port), "--duration", "1", "--rate", "20"]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every reading covered" in done.stdout
    totals = json.loads(done.stdout.splitlines()[-2].split(" ", 1)[1])
    assert totals["covered"] == totals["made"] >= 2
    assert {r.device for r in acker.received} == {"sim-a", "sim-b"}


def test_readings_the_broker_lost_are_sent_again_when_the_ack_stalls(
    broker: DeviceBroker,
) -> None:
    """Readings PUBACKed while nobody subscribed are gone at the broker (as after a crash
    before its autosave); the devices send them again once their ack stops moving."""
    with fleet_of(broker, max_readings=3, config_topic=None, resend_after_s=0.3) as fleet:
        wait_until(lambda: fleet.totals()["published"] == 3 * len(DEVICES), "every publish")
        with stand_in_acker(broker.port, broker.passwords[BRIDGE_USER]) as acker:
            wait_until(lambda: fleet.totals()["covered"] == 3 * len(DEVICES), "the resent ones")
            assert_every_reading_arrived(acker, fleet, 3)
        assert fleet.totals()["resent"] >= 3 * len(DEVICES)
