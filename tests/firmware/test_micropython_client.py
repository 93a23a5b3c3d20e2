"""The MicroPython client's own code, under CPython with the umqtt shim, on a real broker.

A stand-in acker plays the gateway's ack topic (firmware_kit). Each test drives the
device's loop step by step (``Runner.step``) until a condition holds or a deadline passes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from firmware_kit import DeviceBroker, StandInAcker, device_broker, stand_in_acker, wait_until
from outpost_client import Device
from outpost_loop import Runner

from gateway.mqtt.broker_files import BRIDGE_USER

DEVICE = "dev-1"
RETRY_MS = 20  # the tests' broker comes back within a second; keep reconnects quick


@dataclass
class Board:
    """A simulated board: a flash directory, and a sensor that counts its readings."""

    flash: Path
    credentials: dict[str, Any]
    limit: int = 0  # how many readings the sensor gives before it returns None
    given: int = 0
    configs: list[Any] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)

    def sensor(self) -> dict[str, Any] | None:
        if self.given >= self.limit:
            return None
        self.given += 1
        return {"celsius": 20.0 + self.given / 10}

    def power_on(self, **options: Any) -> Runner:
        """A new Device and Runner on this flash (a reboot when one existed before)."""
        device = Device(
            self.credentials,
            str(self.flash),
            on_config=self.configs.append,
            log=lambda _m: None,
            **options,
        )
        self.devices.append(device)
        return Runner(device, self.sensor, interval_s=0.001, retry_first_ms=RETRY_MS)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[DeviceBroker]:
    with device_broker(tmp_path, [DEVICE, "dev-2"]) as running:
        yield running


@pytest.fixture
def acker(broker: DeviceBroker) -> Iterator[StandInAcker]:
    with stand_in_acker(broker.port, broker.passwords[BRIDGE_USER]) as running:
        yield running


@pytest.fixture
def board(tmp_path: Path, broker: DeviceBroker) -> Iterator[Board]:
    flash = tmp_path / "flash"
    flash.mkdir()
    powered = Board(flash, broker.credentials(DEVICE))
    yield powered
    for device in powered.devices:  # a failed test leaves no socket open
        device.close()


def in_order(seen: list[int], expected: list[int]) -> bool:
    """``expected`` is a subsequence of ``seen``."""
    rest = iter(seen)
    return all(seq in rest for seq in expected)


def run_until(runner: Runner, condition: Callable[[], bool], what: str) -> None:
    wait_until(condition, what, step=runner.step)


def test_readings_carry_seq_and_boot_and_stay_queued_until_acked(
    board: Board, acker: StandInAcker
) -> None:
    acker.pause()
    board.limit = 5
    runner = board.power_on()
    device = runner.device
    run_until(runner, lambda: len(acker.seqs(DEVICE)) == 5, "five readings")
    readings = [r.reading for r in acker.received]
    assert [r["seq"] for r in readings] == [1, 2, 3, 4, 5]
    assert {r["boot"] for r in readings} == {device.boot}
    assert 0 < device.boot < 2**31
    assert readings[0]["celsius"] == pytest.approx(20.1)
    assert len(device.queue) == 5 and len(list((board.flash / "queue").iterdir())) == 5

    acker.resume()
    run_until(runner, lambda: len(device.queue) == 0, "the ack to empty the queue")
    assert list((board.flash / "queue").iterdir()) == []
    assert device.covered == 5
    device.close()


def test_json_codec(board: Board, acker: StandInAcker) -> None:
    board.limit = 2
    runner = board.power_on(codec="json")
    run_until(runner, lambda: runner.device.covered == 2, "two readings acked")
    assert json.loads(json.dumps(acker.received[0].reading))["seq"] == 1
    runner.device.close()


def test_resends_uncovered_readings_after_a_broker_restart(
    board: Board, broker: DeviceBroker, acker: StandInAcker
) -> None:
    acker.pause()
    board.limit = 3
    runner = board.power_on()
    run_until(runner, lambda: len(acker.seqs(DEVICE)) == 3, "three readings")
    broker.restart()
    # After the restart the broker may also redeliver to the acker what it had in flight
    # for it, so the device's resend is looked for as a subsequence.
    run_until(runner, lambda: in_order(acker.seqs(DEVICE)[3:], [1, 2, 3]), "the resend")
    assert runner.failures >= 1
    acker.resume()
    run_until(runner, lambda: len(runner.device.queue) == 0, "the ack")
    runner.device.close()


def test_resends_after_a_lost_connection_oldest_first(board: Board, acker: StandInAcker) -> None:
    acker.pause()
    board.limit = 4
    runner = board.power_on()
    run_until(runner, lambda: len(acker.seqs(DEVICE)) == 4, "four readings")
    acker.publish_ack(DEVICE, runner.device.boot, 2)  # readings 1 and 2 are durable
    run_until(runner, lambda: runner.device.covered == 2, "the partial ack")
    runner.device.drop()  # the network goes away, no DISCONNECT
    board.limit = 5
    run_until(runner, lambda: acker.seqs(DEVICE)[4:] == [3, 4, 5], "3, 4 resent, then 5")
    runner.device.close()


def test_a_reboot_keeps_the_boot_and_continues_the_seq(board: Board, acker: StandInAcker) -> None:
    acker.pause()
    board.limit = 3
    first = board.power_on()
    run_until(first, lambda: len(acker.seqs(DEVICE)) == 3, "three readings")
    first.device.drop()  # power cut: nothing is said to the broker

    board.limit = 4
    second = board.power_on()
    assert (second.device.boot, second.device.seq) == (first.device.boot, 3)
    run_until(second, lambda: acker.seqs(DEVICE)[3:] == [1, 2, 3, 4], "resend, then seq 4")
    acker.resume()
    run_until(second, lambda: len(second.device.queue) == 0, "the ack")
    assert {r.reading["boot"] for r in acker.received} == {first.device.boot}
    second.device.close()


def test_a_wiped_flash_starts_a_new_boot(board: Board, tmp_path: Path) -> None:
    first = board.power_on()
    wiped = Board(tmp_path / "wiped" / "outpost", board.credentials)  # not there yet
    second = wiped.power_on()
    assert second.device.boot != first.device.boot
    assert second.device.seq == 0


def test_an_ack_of_another_boot_covers_nothing(board: Board, acker: StandInAcker) -> None:
    acker.pause()
    board.limit = 2
    runner = board.power_on()
    run_until(runner, lambda: len(acker.seqs(DEVICE)) == 2, "two readings")
    boot = runner.device.boot
    acker.publish_ack(DEVICE, boot % (2**31 - 1) + 1, 100)
    # The broker delivers one publisher's messages in order: once the config arrived,
    # the foreign ack sent before it has been handled.
    acker.publish_config(DEVICE, b'{"marker": 1}')
    run_until(runner, lambda: {"marker": 1} in board.configs, "the marker config")
    assert len(runner.device.queue) == 2 and runner.device.covered == 0
    acker.publish_ack(DEVICE, boot, 2)
    run_until(runner, lambda: len(runner.device.queue) == 0, "this boot's ack")
    runner.device.close()


def test_config_sets_the_interval_and_an_empty_message_clears_it(
    board: Board, acker: StandInAcker
) -> None:
    acker.publish_config(DEVICE, b'{"interval_s": 0.25}')
    runner = board.power_on()
    run_until(runner, lambda: board.configs == [{"interval_s": 0.25}], "the retained config")
    assert runner.interval_ms == 250
    acker.publish_config(DEVICE, b"")
    run_until(runner, lambda: board.configs[-1:] == [None], "the cleared config")
    assert runner.interval_ms == 250  # no config: keep the last interval
    runner.device.close()


def test_a_full_queue_drops_the_oldest_and_counts_them(board: Board) -> None:
    board.credentials = {**board.credentials, "port": 1}  # nothing listens: stays offline
    board.limit = 7
    runner = board.power_on(max_queue=4)
    wait_until(lambda: board.given == 7, "seven readings", step=runner.step)
    assert runner.device.queue.seqs == [4, 5, 6, 7]
    assert runner.device.dropped == 3
    again = board.power_on(max_queue=4)  # the count survives a reboot
    assert again.device.dropped == 3 and again.device.queue.seqs == [4, 5, 6, 7]


def test_a_topic_the_acl_forbids_costs_the_connection_not_the_readings(
    board: Board, acker: StandInAcker
) -> None:
    board.limit = 2
    runner = board.power_on(reading_topic="greenhouse/dev-2/reading")  # another device's
    run_until(runner, lambda: runner.failures >= 2, "the broker to close the connection twice")
    assert runner.device.queue.seqs == [1, 2]
    assert acker.received == []


def test_readings_the_broker_lost_are_sent_again_when_the_ack_stalls(
    board: Board, broker: DeviceBroker
) -> None:
    """PUBACKed while nobody subscribed, so lost at the broker (as after a crash before
    its autosave): the board sends them again once its ack has not moved for a while."""
    board.limit = 3
    runner = board.power_on()
    runner.resend_after_ms = 300
    device = runner.device
    run_until(runner, lambda: device.sent == 3, "three readings published")
    with stand_in_acker(broker.port, broker.passwords[BRIDGE_USER]) as acker:
        run_until(runner, lambda: device.covered == 3, "the resent readings covered")
        assert sorted(set(acker.seqs(DEVICE))) == [1, 2, 3]
    device.close()
