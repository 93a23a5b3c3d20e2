"""``outpost mqtt config`` and the broker step's one-line refusals, in this process
(no broker runs here; the tests with a real Mosquitto are in
``tests/mqtt/test_mqtt_broker_commands.py``, beside the MQTT test kit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.mqtt import supervisor

READINGS = """
from gateway import mutation, query, v

@mutation(args={"device": v.string(), "t": v.float64()})
async def ingest(ctx, args):
    return await ctx.db.insert("readings", args)

@query(args={})
async def configs(ctx, args):
    return []
"""

MQTT = """
from gateway import mqtt_router

mqtt = mqtt_router()
mqtt.ingest("sensors/{device}/t", "readings:ingest")
mqtt.publish("devices/{device}/config", query="readings:configs", each=True)
mqtt.publish("site/summary", query="readings:configs")
"""


def _app(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    (app / "convex").mkdir(parents=True)
    (app / "convex" / "readings.py").write_text(READINGS)
    (app / "convex" / "mqtt.py").write_text(MQTT)
    return app


def test_a_missing_mosquitto_exits_2_saying_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(supervisor, "SEARCH_DIRS", ())
    app = _app(tmp_path)
    status = main(["serve", str(app), "--port", "0", "--data-dir", str(tmp_path / "data")])
    assert status == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("outpost:")]
    assert lines == [
        "outpost: cannot start: mqtt broker: the managed MQTT broker needs mosquitto, which is "
        "not installed: run `sudo apt-get install mosquitto` "
        '(or set mqtt_broker = "external" or "off")'
    ]


def test_external_without_a_url_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OUTPOST_MQTT_BROKER", "external")
    app = _app(tmp_path)
    assert main(["serve", str(app), "--port", "0", "--data-dir", str(tmp_path / "data")]) == 2
    assert 'mqtt_broker is "external" but mqtt_url is empty' in capsys.readouterr().err


def test_mqtt_config_prints_a_drop_in_and_the_acl_but_no_hashes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app, data = _app(tmp_path), tmp_path / "data"
    assert main(["device", "add", "d1", str(app), "--data-dir", str(data)]) == 0
    capsys.readouterr()
    assert main(["mqtt", "config", str(app), "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# file: outpost.conf\n") and "\n# file: acl\n" in out
    assert "$7$" not in out and "d1" not in out
    config = out.split("\n# file: acl\n")[0]
    options = {line.split()[0] for line in config.splitlines() if line and line[0] != "#"}
    assert not options & {"pid_file", "persistence_location", "log_dest", "user"}
    assert {"allow_anonymous", "autosave_on_changes", "max_queued_bytes", "listener"} <= options
    assert "password_file /etc/mosquitto/outpost/passwords" in out
    assert "pattern write sensors/%u/t" in out and "pattern read devices/%u/config" in out
    assert "site/summary" not in out  # no {device}: no device reads it, the bridge does
