"""``outpost device add|list|remove`` and the MQTT settings, through the real command."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config_file import resolve_settings
from gateway.mqtt.broker_files import BRIDGE_USER
from gateway.mqtt.passwords import (
    hash_password,
    read_password_file,
    verify_password,
    write_password_file,
)

OUTPOST = Path(sys.executable).parent / "outpost"


@pytest.fixture
def app(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    folder.mkdir()
    return folder


def _data(app: Path) -> Path:
    return app.parent / "data"


def _passwords(app: Path) -> Path:
    return _data(app) / "mosquitto" / "passwords"


def _device(app: Path, *args: str) -> int:
    """``outpost device ARGS APP --data-dir DATA`` in this process; its exit status."""
    return main(["device", *args, str(app), "--data-dir", str(_data(app))])


def _add_json(app: Path, device: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert _device(app, "add", device, "--json") == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    credentials: dict[str, object] = json.loads(out)
    return credentials


# --- add ---------------------------------------------------------------------------------


def test_add_prints_the_credentials_once_and_stores_only_the_hash(
    app: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credentials = _add_json(app, "d1", capsys)
    password = credentials["password"]
    assert isinstance(password, str) and len(password) >= 32
    assert credentials == {
        "device": "d1",
        "username": "d1",
        "password": password,
        "host": "127.0.0.1",
        "port": 1883,
    }
    text = _passwords(app).read_text()
    assert password not in text
    entries = read_password_file(_passwords(app))
    assert list(entries) == ["d1"]
    assert verify_password(password, entries["d1"])
    assert not verify_password(password + "x", entries["d1"])


def test_add_in_plain_text_and_settings_from_outpost_toml(
    app: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (app / "outpost.toml").write_text('mqtt_host = "0.0.0.0"\nmqtt_port = 8883\n')
    assert _device(app, "add", "d1") == 0
    captured = capsys.readouterr()
    lines = dict(line.split(": ", 1) for line in captured.out.splitlines())
    assert list(lines) == ["device", "username", "password", "host", "port"]
    assert (lines["device"], lines["username"]) == ("d1", "d1")
    assert (lines["host"], lines["port"]) == ("0.0.0.0", "8883")
    assert verify_password(lines["password"], read_password_file(_passwords(app))["d1"])
    assert "shown only this once" in captured.err


def test_the_data_directory_is_created_private(
    app: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_json(app, "d1", capsys)
    for directory in (_data(app), _data(app) / "mosquitto"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(_passwords(app).stat().st_mode) == 0o600


def test_add_keeps_the_other_entries(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _add_json(app, "d1", capsys)
    before = read_password_file(_passwords(app))["d1"]
    _add_json(app, "d2", capsys)
    entries = read_password_file(_passwords(app))
    assert entries["d1"] == before and set(entries) == {"d1", "d2"}


def test_an_existing_device_is_refused(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _add_json(app, "d1", capsys)
    before = _passwords(app).read_text()
    assert _device(app, "add", "d1", "--json") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "outpost: device 'd1' already exists; to give it a new password, "
        "`outpost device remove d1` first\n"
    )
    assert _passwords(app).read_text() == before


@pytest.mark.parametrize("device", ["a/b", "a+", "#", "x y", "a:b", "%u"])
def test_an_id_that_is_no_topic_segment_is_refused(
    app: Path, device: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _device(app, "add", device) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(f"outpost: MQTT username (device ID) {device!r} contains")
    assert not _data(app).exists()


def test_the_bridge_user_is_no_device(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _device(app, "add", BRIDGE_USER) == 1
    assert capsys.readouterr().err == (
        f"outpost: {BRIDGE_USER!r} is the gateway's own MQTT user, not a device ID\n"
    )


def test_add_refuses_when_the_broker_is_not_managed(
    app: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTPOST_MQTT_BROKER", "off")
    assert _device(app, "add", "d1") == 1
    assert capsys.readouterr().err.startswith("outpost: mqtt_broker is 'off': devices are")
    assert not _passwords(app).exists()


def test_add_json_in_a_subprocess(app: Path) -> None:
    done = subprocess.run(
        [OUTPOST, "device", "add", "d1", "--json", app, "--data-dir", _data(app)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    credentials = json.loads(done.stdout)
    assert {"device", "username", "password", "host", "port"} <= set(credentials)
    assert credentials["device"] == credentials["username"] == "d1"
    assert verify_password(credentials["password"], read_password_file(_passwords(app))["d1"])


# --- list and remove ---------------------------------------------------------------------


def test_list_prints_the_devices_not_the_bridge(
    app: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_json(app, "zeta", capsys)
    _add_json(app, "alpha", capsys)
    entries = read_password_file(_passwords(app))
    write_password_file(_passwords(app), {**entries, BRIDGE_USER: hash_password("b")})
    assert _device(app, "list") == 0
    captured = capsys.readouterr()
    assert captured.out == "alpha\nzeta\n" and captured.err == ""


def test_list_without_devices_prints_nothing_and_a_hint(
    app: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _device(app, "list") == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "no devices yet; add one with `outpost device add ID`\n"
    assert not _data(app).exists()  # list never creates the data directory


def test_remove_deletes_the_entry(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _add_json(app, "d1", capsys)
    _add_json(app, "d2", capsys)
    assert _device(app, "remove", "d1") == 0
    assert capsys.readouterr().err.startswith("removed device 'd1'\n")
    assert list(read_password_file(_passwords(app))) == ["d2"]
    assert stat.S_IMODE(_passwords(app).stat().st_mode) == 0o600
    assert _device(app, "list") == 0
    assert capsys.readouterr().out == "d2\n"


def test_removing_an_unknown_device_is_one_line_and_exit_1(
    app: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _device(app, "remove", "ghost") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "outpost: no device 'ghost' (see `outpost device list`)\n"


def test_a_broken_password_file_is_one_line(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _passwords(app).parent.mkdir(parents=True)
    _passwords(app).write_text("d1:plaintext\n")
    assert _device(app, "list") == 1
    assert capsys.readouterr().err == (
        f"outpost: {_passwords(app)}:1: not a 'username:$7$...' password line "
        "(fix or move the file)\n"
    )


def test_help_says_a_running_broker_is_reloaded(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["device", "add", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "A running managed broker is reloaded and sees the change at once." in help_text


def test_without_a_running_broker_add_and_remove_say_so(
    app: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_running = "no broker is running; it sees the change when it starts\n"
    assert _device(app, "add", "d1") == 0
    assert capsys.readouterr().err.endswith(not_running)
    assert _device(app, "remove", "d1") == 0
    assert capsys.readouterr().err == "removed device 'd1'\n" + not_running


def test_concurrent_adds_keep_every_device(app: Path) -> None:
    """Eight ``device add`` processes at once: the lock keeps each one's line."""
    names = [f"d{i}" for i in range(8)]
    flags = [str(app), "--data-dir", str(_data(app))]
    children = [
        subprocess.Popen(
            [str(OUTPOST), "device", "add", name, *flags],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for name in names
    ]
    for child in children:
        _out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
    assert sorted(read_password_file(_passwords(app))) == names


# --- settings ----------------------------------------------------------------------------


def test_mqtt_settings_from_the_file_then_the_environment(tmp_path: Path) -> None:
    (tmp_path / "outpost.toml").write_text(
        'mqtt_broker = "external"\nmqtt_host = "0.0.0.0"\nmqtt_port = 1884\n'
        'mqtt_url = "mqtts://gw:secret@broker.lan:8883"\n'
    )
    s = resolve_settings(tmp_path, environ={}).settings
    assert (s.mqtt_broker, s.mqtt_host, s.mqtt_port) == ("external", "0.0.0.0", 1884)
    assert s.mqtt_url == "mqtts://gw:secret@broker.lan:8883"
    environ = {
        "OUTPOST_MQTT_BROKER": "off",
        "OUTPOST_MQTT_HOST": "10.0.0.2",
        "OUTPOST_MQTT_PORT": "1885",
        "OUTPOST_MQTT_URL": "mqtt://u:p@h",
    }
    resolved = resolve_settings(tmp_path, environ=environ)
    s = resolved.settings
    assert (s.mqtt_broker, s.mqtt_host, s.mqtt_port, s.mqtt_url) == (
        "off",
        "10.0.0.2",
        1885,
        "mqtt://u:p@h",
    )
    assert resolved.origins["mqtt_port"] == "OUTPOST_MQTT_PORT"


def test_mqtt_defaults(tmp_path: Path) -> None:
    s = resolve_settings(tmp_path, environ={}).settings
    assert (s.mqtt_broker, s.mqtt_host, s.mqtt_port, s.mqtt_url) == (
        "managed",
        "127.0.0.1",
        1883,
        "",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'mqtt_broker = "mosquitto"',
            ":1: mqtt_broker must be one of managed, external, off, got 'mosquitto'",
        ),
        ("mqtt_port = 0", ":1: mqtt_port must be between 1 and 65535, got 0"),
        ("mqtt_port = 65536", ":1: mqtt_port must be between 1 and 65535, got 65536"),
        (
            'mqtt_url = "http://gw:secret@broker:1883"',
            ":1: mqtt_url must start with mqtt:// or mqtts:// (TLS), not 'http://', "
            "got 'http://gw:***@broker:1883'",
        ),
        (
            'mqtt_url = "broker.lan:1883"',
            ":1: mqtt_url must start with mqtt:// or mqtts:// (TLS), not 'broker.lan://', "
            "got 'broker.lan:1883'",
        ),
        (
            'mqtt_url = "mqtt://"',
            ":1: mqtt_url must name the broker's host (mqtt://user:password@host:port), "
            "got 'mqtt://'",
        ),
        (
            'mqtt_url = "mqtt://u:p@h:port"',
            ":1: mqtt_url has a port that is not a number between 0 and 65535, "
            "got 'mqtt://u:***@h:port'",
        ),
        (
            'mqtt_url = "mqtt://gw:secret@[::1"',
            ":1: mqtt_url is not a URL (Invalid IPv6 URL), got '<not a URL>'",
        ),
    ],
)
def test_a_bad_mqtt_setting_is_one_line_and_exit_2(
    app: Path, text: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (app / "outpost.toml").write_text(text + "\n")
    assert _device(app, "list") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"outpost: {app / 'outpost.toml'}{expected}\n"
    assert "secret" not in captured.err


def test_a_bad_mqtt_variable_names_it(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"OUTPOST_MQTT_BROKER": "Managed"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environ.items():
            patch.setenv(name, value)
        assert _device(app, "add", "d1") == 2
    assert capsys.readouterr().err == (
        "outpost: OUTPOST_MQTT_BROKER: mqtt_broker must be one of managed, external, off, "
        "got 'Managed'\n"
    )
    assert not _data(app).exists()


def test_outpost_config_hides_the_mqtt_password(
    app: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (app / "outpost.toml").write_text('mqtt_url = "mqtts://gw:secret@broker.lan:8883"\n')
    assert main(["config", str(app)]) == 0
    out = capsys.readouterr().out
    assert 'mqtt_url = "mqtts://gw:***@broker.lan:8883"' in out
    assert "secret" not in out
