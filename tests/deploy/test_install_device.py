"""``outpost device`` with Debian's mosquitto.service as the broker: ``mqtt_broker =
"external"`` is accepted once Outpost's drop-in is in ``conf.d`` (the external broker is
this machine's), and the command says who brings the change to Mosquitto."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import device, main


def _add(tmp_path: Path, name: str) -> int:
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    return main(["device", "add", name, str(app), "--data-dir", str(tmp_path / "data")])


def test_external_takes_devices_only_with_the_drop_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    drop_in = tmp_path / "conf.d" / "outpost.conf"
    monkeypatch.setattr(device, "SYSTEM_DROP_IN", drop_in)
    monkeypatch.setenv("OUTPOST_MQTT_BROKER", "external")

    assert _add(tmp_path, "d1") == 1
    refused = capsys.readouterr().err
    assert "mqtt_broker is 'external'" in refused and str(drop_in) in refused

    drop_in.parent.mkdir()
    drop_in.write_text("# made by outpost mqtt config\n")
    assert _add(tmp_path, "d1") == 0
    said = capsys.readouterr().err
    assert "outpost-mosquitto.path" in said and "reloads it" in said
    registry = (tmp_path / "data" / "mosquitto" / "passwords").read_text()
    assert registry.startswith("d1:$7$")
