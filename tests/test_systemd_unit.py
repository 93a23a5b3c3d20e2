"""``systemd/outpost.service``: what it promises, checked by systemd's own tools
(``systemd-analyze verify`` and ``systemd-analyze security``, offline: no systemd need
be running), on a copy whose ``ExecStart`` is this checkout's ``outpost``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from debian import ensure_programs

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "outpost.service"
OUTPOST = Path(sys.executable).parent / "outpost"


@pytest.fixture(scope="module")
def analyze() -> str:
    """``systemd-analyze`` (Debian's systemd package, installed if missing as root)."""
    found = ensure_programs(["systemd-analyze"], ["systemd"], "checking the systemd unit")
    return found["systemd-analyze"]


def _settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def _here(tmp_path: Path) -> Path:
    """The unit with ``ExecStart`` at this checkout's ``outpost`` (verify checks that the
    program exists)."""
    text = UNIT.read_text().replace("/opt/outpost/venv/bin/outpost", str(OUTPOST))
    unit = tmp_path / "outpost.service"
    unit.write_text(text)
    return unit


def test_the_unit_says_what_the_appliance_needs() -> None:
    s = _settings()
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["WatchdogSec"] and s["Restart"] == ["on-failure"]
    assert " serve " in s["ExecStart"][0] and "--data-dir /var/lib/outpost" in s["ExecStart"][0]
    assert s["ProtectSystem"] == ["strict"]
    # The data directory, and Avahi's service files where they exist (LAN discovery).
    assert s["ReadWritePaths"] == ["/var/lib/outpost", "-/etc/avahi/services"]
    assert "avahi-daemon.service" in s["After"][0].split()  # it runs before we decide
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome"):
        assert s[key] == ["yes"], key
    assert s["CapabilityBoundingSet"] == [""]  # no capability at all
    assert "@system-service" in s["SystemCallFilter"]
    assert s["User"] == ["outpost"]


def test_systemd_analyze_verify_passes(tmp_path: Path, analyze: str) -> None:
    done = subprocess.run(
        [analyze, "verify", str(_here(tmp_path))], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # not even a warning


def test_the_security_exposure_is_ok_or_better(tmp_path: Path, analyze: str) -> None:
    done = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(_here(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", done.stdout)
    assert match is not None, done.stdout + done.stderr
    score, verdict = float(match[1]), match[2]
    assert verdict in ("OK", "SAFE", "PERFECT"), f"{score} {verdict}"
    assert score <= 2.5  # systemd calls up to 4.9 "OK"; this unit scored 1.6


def test_the_mosquitto_sync_units_verify(tmp_path: Path, analyze: str) -> None:
    """outpost-mosquitto.path/.service (deploy/install.sh's Mosquitto sync) and the
    outpost.service drop-in that hands the gateway the broker's URL."""
    systemd = UNIT.parent
    sync = UNIT.parent.parent / "deploy" / "outpost-mosquitto-sync"
    service = (systemd / "outpost-mosquitto.service").read_text()
    assert "ExecStart=/opt/outpost/bin/outpost-mosquitto-sync" in service
    (tmp_path / "outpost-mosquitto.service").write_text(
        service.replace("/opt/outpost/bin/outpost-mosquitto-sync", str(sync))
    )
    path = (systemd / "outpost-mosquitto.path").read_text()
    assert "PathChanged=/var/lib/outpost/mosquitto/passwords" in path
    (tmp_path / "outpost-mosquitto.path").write_text(path)
    _here(tmp_path)
    (tmp_path / "outpost.service.d").mkdir()
    drop_in = (systemd / "outpost.service.d" / "mosquitto.conf").read_text()
    assert "EnvironmentFile=-/etc/outpost/mqtt.env" in drop_in
    (tmp_path / "outpost.service.d" / "mosquitto.conf").write_text(drop_in)
    units = ["outpost-mosquitto.path", "outpost-mosquitto.service", "outpost.service"]
    done = subprocess.run(
        [analyze, "verify", *(str(tmp_path / unit) for unit in units)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr
