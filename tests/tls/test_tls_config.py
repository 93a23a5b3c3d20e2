"""The TLS settings: one line for each bad value, paths relative to ``outpost.toml``, an
``https://`` site URL, and what ``tls`` changes in the mDNS record."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import Settings
from gateway.config_file import resolve_settings
from gateway.discovery.records import found_gateway, gateway_announcements
from gateway.errors import ConfigError
from gateway.tls import api_url

OUTPOST = Path(sys.executable).parent / "outpost"


def _resolve(app: Path, toml: str = "", **environ: str) -> Settings:
    (app / "outpost.toml").write_text(toml)
    return resolve_settings(app, environ={"HOME": str(app), **environ}).settings


@pytest.mark.parametrize(
    ("toml", "environ", "expected"),
    [
        ('tls_cert = "a.pem"\n', {}, "tls_cert and tls_key go together: set both or neither"),
        ("", {"OUTPOST_TLS_KEY": "k.pem"}, "tls_cert and tls_key go together"),
        ("mqtt_tls_port = 70000\n", {}, "outpost.toml:1: mqtt_tls_port must be between 0"),
        ("mqtt_tls_port = 1883\n", {}, "mqtt_tls_port must differ from mqtt_port, both are 1883"),
        ('tls = "yes"\n', {}, "outpost.toml:1: tls must be a boolean (true or false), got 'yes'"),
        ("", {"OUTPOST_TLS": "maybe"}, "OUTPOST_TLS: tls must be a boolean"),
        ("", {"OUTPOST_MQTT_TLS_PORT": "tls"}, "OUTPOST_MQTT_TLS_PORT: mqtt_tls_port must be"),
    ],
)
def test_a_bad_tls_setting_is_one_line(
    tmp_path: Path, toml: str, environ: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _resolve(tmp_path, toml, **environ)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_paths_follow_the_file_and_the_site_url_is_https(tmp_path: Path) -> None:
    settings = _resolve(
        tmp_path, 'tls = true\ntls_cert = "certs/gw.pem"\ntls_key = "certs/gw.key"\n'
    )
    assert settings.tls_cert == str(tmp_path / "certs" / "gw.pem")
    assert settings.tls_key == str(tmp_path / "certs" / "gw.key")
    assert settings.site_url == "https://127.0.0.1:3210"
    assert api_url(settings) == "https://127.0.0.1:3210"  # outpost run and status
    assert api_url(Settings(host="::1", port=4000)) == "http://[::1]:4000"


def test_serve_with_a_certificate_it_cannot_read_exits_2_naming_it(tmp_path: Path) -> None:
    (tmp_path / "convex").mkdir()
    (tmp_path / "outpost.toml").write_text(
        'tls = true\ntls_cert = "missing.pem"\ntls_key = "missing.key"\nmqtt_broker = "off"\n'
    )
    done = subprocess.run(
        [OUTPOST, "serve", str(tmp_path), "--port", "0", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("outpost:")]
    assert line.startswith(f"outpost: cannot start: http: tls_cert {tmp_path / 'missing.pem'}")
    assert "No such file or directory" in line


def test_the_mdns_record_says_tls_and_the_brokers_tls_port() -> None:
    outpost, mqtt = gateway_announcements(
        name="pi",
        gateway_id="g",
        api_port=3210,
        site_port=None,
        mqtt_port=1883,
        tls=True,
        mqtt_tls_port=8883,
    )
    assert outpost.txt["tls"] == "1"
    assert mqtt.txt["tls_port"] == "8883"
    assert found_gateway("pi", ("10.0.0.2",), 3210, outpost.txt).tls
    [plain] = gateway_announcements(
        name="pi", gateway_id="g", api_port=3210, site_port=None, mqtt_port=None
    )
    assert "tls" not in plain.txt
    assert not found_gateway("pi", (), 3210, plain.txt).tls


def test_outpost_discover_reads_tls_and_the_brokers_tls_port() -> None:
    from zeroconf.asyncio import AsyncServiceInfo

    from gateway.discovery.browse import MQTT, OUTPOST, gateways_from

    def info(kind: str, port: int, txt: dict[str, str]) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            kind, f"barn.{kind}", port=port, properties=txt, parsed_addresses=["10.0.0.7"]
        )

    gid = {"name": "barn", "gateway_id": "a" * 32}
    [found] = gateways_from(
        [info(OUTPOST, 3210, {**gid, "tls": "1"}), info(MQTT, 1883, {**gid, "tls_port": "8883"})]
    )
    assert (found.tls, found.mqtt_port, found.mqtt_tls_port) == (True, 1883, 8883)
    assert found.as_json()["mqttTlsPort"] == 8883


def test_tls_ca_refuses_a_ca_it_should_not_make(tmp_path: Path) -> None:
    """Not with a certificate of one's own; not in another user's data directory (a CA
    root made there is one the gateway could not read)."""
    (tmp_path / "outpost.toml").write_text('tls_cert = "c.pem"\ntls_key = "k.pem"\n')
    done = subprocess.run(
        [OUTPOST, "tls", "ca", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.startswith("outpost: tls_cert is set"), done.stderr
    if os.geteuid() != 0:
        pytest.skip("needs root to give a directory to another user")
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 65534, 65534)
    done = subprocess.run(
        [OUTPOST, "tls", "ca", str(tmp_path / "app"), "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "belongs to another user" in done.stderr
    assert not (data / "tls").exists()
