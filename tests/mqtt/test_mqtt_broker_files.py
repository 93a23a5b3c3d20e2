"""The managed broker's files: the ACL text and its refusals, then a real Mosquitto on them."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from mosquitto_kit import (
    Broker,
    assert_only,
    connack_until,
    current_user,
    running_broker,
    session,
)

from gateway.mqtt.broker_files import (
    ACL_FILE_NAME,
    CONFIG_NAME,
    PASSWORD_FILE_NAME,
    BrokerSpec,
    acl_text,
    broker_file_texts,
    write_broker_files,
)
from gateway.mqtt.passwords import generate_password, hash_password, read_password_file

BRIDGE = "outpost-bridge"
INGEST = ["sensors/{device}/temperature"]
PUBLISH = ["devices/{device}/config", "devices/{device}/{field}"]
PASSWORDS = {
    BRIDGE: generate_password(),
    "dev-a": generate_password(),
    "dev-b": generate_password(),
}


def make_spec(data_dir: Path, port: int = 1883) -> BrokerSpec:
    return BrokerSpec(
        host="127.0.0.1",
        port=port,
        data_dir=data_dir,
        bridge_user=BRIDGE,
        users={name: hash_password(pw) for name, pw in PASSWORDS.items()},
        ingest_patterns=INGEST,
        publish_patterns=PUBLISH,
        run_as_user=current_user(),
    )


# --- the texts ---------------------------------------------------------------------------


def test_acl_text_ties_every_device_topic_to_its_username() -> None:
    text = acl_text(BRIDGE, INGEST, PUBLISH)
    rules = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert rules == [
        "pattern write sensors/%u/temperature",
        "pattern read devices/%u/config",
        "pattern read devices/%u/+",
        "pattern read outpost/ack/%u",
        "pattern write outpost/call/%u/#",
        "pattern read outpost/reply/%u/#",
        f"user {BRIDGE}",
        "topic readwrite #",
    ]


@pytest.mark.parametrize(
    ("pattern", "complaint"),
    [
        ("sensors/temperature", "no {device} segment"),
        ("sensors/{name}/temperature", "no {device} segment"),
        ("sensors/dev-{device}/temperature", "whole segment"),
        ("sensors/{device}x/temperature", "whole segment"),
        ("sensors/{device}/+", "wildcard"),
        ("sensors/{device}/#", "wildcard"),
        ("sensors/{device}/a+b", "wildcard"),
        ("sensors/{device}/{device}", "twice"),
        ("sensors/{device}/%c", "substitution"),
        ("sensors//{device}", "empty segment"),
        ("$SYS/{device}", "starts with '$'"),
        ("", "empty"),
    ],
)
def test_a_bad_pattern_is_refused(pattern: str, complaint: str) -> None:
    # A publish topic may lack {device}: every device reads it (next test).
    cases = [([pattern], [])] if "{device}" in complaint else [([pattern], []), ([], [pattern])]
    for ingest, publish in cases:
        with pytest.raises(ValueError, match="topic pattern") as caught:
            acl_text(BRIDGE, ingest, publish)
        assert complaint in str(caught.value)


def test_a_publish_topic_without_device_is_read_by_every_device() -> None:
    text = acl_text(BRIDGE, INGEST, ["site/summary", "zones/{zone}/config"])
    assert "pattern read site/summary\n" in text
    assert "pattern read zones/+/config\n" in text


@pytest.mark.parametrize("name", ["a/b", "a+b", "a#", "a%u", "a b", "a\tb", "a:b", ""])
def test_a_username_that_is_no_topic_segment_is_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="MQTT username"):
        acl_text(name, INGEST, PUBLISH)
    spec = make_spec(tmp_path)
    with pytest.raises(ValueError, match="MQTT username"):
        broker_file_texts(replace(spec, users={**spec.users, name: hash_password("x")}))


def test_the_bridge_needs_a_password_entry(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    users = {name: encoded for name, encoded in spec.users.items() if name != BRIDGE}
    with pytest.raises(ValueError, match="no password entry"):
        broker_file_texts(replace(spec, users=users))


def test_config_is_tuned_for_no_loss(tmp_path: Path) -> None:
    conf = broker_file_texts(make_spec(tmp_path, port=1999))[CONFIG_NAME]
    options = {line.split(" ", 1)[0]: line for line in conf.splitlines() if line[:1].isalpha()}
    directory = tmp_path.absolute() / "mosquitto"
    assert options["persistence"] == "persistence true"
    assert options["persistence_location"] == f"persistence_location {directory}/"
    assert options["autosave_on_changes"] == "autosave_on_changes true"
    assert options["max_queued_messages"] == "max_queued_messages 0"
    assert options["allow_anonymous"] == "allow_anonymous false"
    assert options["listener"] == "listener 1999 127.0.0.1"
    assert options["password_file"] == f"password_file {directory / PASSWORD_FILE_NAME}"
    assert options["acl_file"] == f"acl_file {directory / ACL_FILE_NAME}"
    assert "pid_file" not in options


def test_files_are_written_private(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    paths = write_broker_files(spec)
    assert stat.S_IMODE(spec.directory.stat().st_mode) == 0o700
    for path in paths.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_password_file(paths[PASSWORD_FILE_NAME]) == dict(spec.users)
    assert [p.name for p in spec.directory.iterdir() if p.name.startswith(".")] == []


# --- a real Mosquitto ----------------------------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with running_broker(lambda port: make_spec(tmp_path / "data", port), tmp_path) as running:
        yield running


def test_mosquitto_accepts_the_config_and_stays_up(broker: Broker) -> None:
    with session(broker.port, BRIDGE, PASSWORDS[BRIDGE]) as bridge:
        assert not bridge.connack.is_failure
    assert broker.alive(), broker.log()
    assert "Error" not in broker.log()


def test_devices_connect_with_their_password_only(broker: Broker) -> None:
    with session(broker.port, "dev-a", PASSWORDS["dev-a"]) as device:
        assert not device.connack.is_failure, broker.log()
    refused = [
        ("dev-a", PASSWORDS["dev-b"]),  # a wrong password
        ("dev-z", PASSWORDS["dev-a"]),  # an unknown user
        (None, None),  # anonymous
    ]
    for username, password in refused:
        with session(broker.port, username, password) as client:
            assert client.connack.is_failure, username
            assert str(client.connack) in {"Not authorized", "Bad user name or password"}


def test_a_device_publishes_only_to_its_own_topics(broker: Broker) -> None:
    with session(broker.port, BRIDGE, PASSWORDS[BRIDGE]) as bridge:
        assert bridge.subscribe("sensors/+/temperature", "devices/#") == [1, 1]
        forged = ["sensors/dev-b/temperature", "devices/dev-a/config"]  # another's; read-only
        for topic in forged:
            with session(broker.port, "dev-a", PASSWORDS["dev-a"]) as device:
                assert str(device.publish_refused(topic, b"forged")) == "Not authorized"
        with session(broker.port, "dev-a", PASSWORDS["dev-a"]) as device:
            device.publish("sensors/dev-a/temperature", b"21.5")  # the control
        # Mosquitto handles one event at a time: a forged message let through would have
        # been queued for the bridge before the control published after it.
        assert_only(bridge, [("sensors/dev-a/temperature", b"21.5")])


def test_a_device_reads_only_its_own_topics(broker: Broker) -> None:
    with (
        session(broker.port, BRIDGE, PASSWORDS[BRIDGE]) as bridge,
        session(broker.port, "dev-a", PASSWORDS["dev-a"]) as device,
    ):
        topics = ["devices/{}/config", "devices/{}/mode", "outpost/ack/{}"]
        own = [t.format("dev-a") for t in topics]
        others = [t.format("dev-b") for t in topics]
        # Mosquitto 2.0.11 grants all six and checks read access on each delivery.
        device.subscribe(*own, *others)
        for topic in [*others, *own]:
            bridge.publish(topic, topic.encode())
        assert_only(device, [(topic, topic.encode()) for topic in own])


def test_a_retained_message_survives_a_broker_restart(broker: Broker) -> None:
    with session(broker.port, BRIDGE, PASSWORDS[BRIDGE]) as bridge:
        bridge.publish("devices/dev-a/config", b'{"rate": 5}', retain=True)
    assert broker.stop() == 0, broker.log()
    assert broker.start(), "the port was taken between stop and start"
    with session(broker.port, "dev-a", PASSWORDS["dev-a"]) as device:
        device.subscribe("devices/dev-a/config")
        message = device.receive()
        assert (message.topic, message.payload, message.retain) == (
            "devices/dev-a/config",
            b'{"rate": 5}',
            True,
        )


def test_rewritten_files_take_effect_on_reload(broker: Broker) -> None:
    password = generate_password()
    users = {name: h for name, h in broker.spec.users.items() if name != "dev-a"}
    broker.spec = replace(broker.spec, users={**users, "dev-c": hash_password(password)})
    write_broker_files(broker.spec)  # what `outpost device add/remove` will do
    broker.reload()
    connack_until(broker.port, "dev-c", password, refused=False)  # added
    connack_until(broker.port, "dev-a", PASSWORDS["dev-a"], refused=True)  # removed
    assert broker.alive(), broker.log()
