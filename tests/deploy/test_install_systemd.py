"""``deploy/install.sh`` under a real systemd: the Debian root booted with
``systemd-nspawn``, systemd as its PID 1.

The chroot prepares what needs the network (apt, pip): the install, and a second release
whose ``outpost serve`` fails at start (its ``--version`` and ``outpost check`` pass),
rolled back at once. Booted, with a network of its own and no way out: the enabled units
start, a run with nothing to do leaves the gateway alone, ``outpost device add`` reaches
Mosquitto through ``outpost-mosquitto.path`` (the device logs in), a new app restarts
the gateway and its MQTT readings reach the store through Debian's Mosquitto, an upgrade
to the release that cannot serve is backed up, tried and rolled back, an event loop
blocked for real is killed by systemd's watchdog and restarted (``watchdog_kit``, the
figures printed), and ``--uninstall`` stops everything it started.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from debian_root_kit import DebianRoot, remove_root, unpack_root
from install_kit import DEVICE, DEVICE_FILE, INSTALL, SOURCE, copy_checkout
from watchdog_kit import booted_watchdog, stage_stall_app

BROKEN = "/opt/src-broken"  # a checkout whose release cannot serve
BOOTED = f"""
set -eu
fail() {{ echo "FAILED: $*"; journalctl --no-pager -n 80; exit 1; }}
state() {{ systemctl show -p ActiveState --value "$1"; }}
main_pid() {{ systemctl show -p MainPID --value outpost.service; }}
# systemd starts the units beside this script: wait for a condition, 60 s at most.
wait_for() {{
    i=0
    until eval "$1"; do
        i=$((i + 1))
        [ "$i" -lt 300 ] || fail "timed out: $1"
        sleep 0.2
    done
}}
cd /tmp

wait_for '[ "$(state outpost.service)" = active ]'
for unit in mosquitto.service outpost-mosquitto.path; do
    [ "$(state $unit)" = active ] || fail "$unit is $(state $unit)"
done
echo "ok: booted; outpost, mosquitto and the path unit active"

first=$(main_pid)
{INSTALL}
[ "$(main_pid)" = "$first" ] || fail "a run with nothing to do restarted the gateway"
echo "ok: nothing to do, the gateway left running"

runuser -u outpost -- outpost device add sensor-1 /etc/outpost/app --json >{DEVICE_FILE}
wait_for 'grep -q "^sensor-1:" /etc/mosquitto/outpost/passwords'
echo "ok: the device reached mosquitto's password file through the path unit"

{INSTALL} --app {SOURCE}/examples/greenhouse
[ "$(state outpost.service)" = active ] || fail "outpost is $(state outpost.service) on the new app"
[ "$(main_pid)" != "$first" ] || fail "the gateway was not restarted for the new app"
grep -q "greenhouse/%u/reading" /etc/mosquitto/outpost/acl || fail "the ACL did not follow"
/opt/outpost/venv/bin/python /root/device.py || fail "the device's reading did not arrive"
echo "ok: the new app serves; a device's reading came through mosquitto.service"

good=$(readlink /opt/outpost/venv)
if {INSTALL} --from {BROKEN} >/root/upgrade.log 2>&1; then
    cat /root/upgrade.log
    fail "the upgrade to a release that cannot serve succeeded"
fi
grep "outpost-install:" /root/upgrade.log
[ "$(readlink /opt/outpost/venv)" = "$good" ] || fail "not back on $good"
wait_for '[ "$(state outpost.service)" = active ]'
ls /var/lib/outpost/backups/pre-upgrade-*.tar >/dev/null || fail "no backup before the upgrade"
echo "ok: the failed upgrade was backed up first and rolled back"
{booted_watchdog(INSTALL)}

{INSTALL} --uninstall
[ "$(state outpost.service)" != active ] || fail "outpost still runs after --uninstall"
wait_for '[ "$(state mosquitto.service)" = active ]'
echo "ok: uninstalled; mosquitto runs on without Outpost's drop-in"
"""


@pytest.fixture
def root(tmp_path: Path) -> Iterator[DebianRoot]:
    if os.geteuid() != 0:
        pytest.fail("the install.sh test needs root (chroot, mounts): run it as root")
    made = unpack_root(tmp_path)
    try:
        copy_checkout(made.file(SOURCE))
        copy_checkout(made.file(BROKEN))
        service = made.file(f"{BROKEN}/gateway/service.py")  # imported by `serve` alone
        service.write_text(service.read_text() + "\nraise RuntimeError('cannot serve')\n")
        stage_stall_app(made.path)
        yield made
    finally:
        remove_root(made)


@pytest.mark.timeout(900)
def test_under_systemd_units_start_devices_reload_a_bad_upgrade_rolls_back(
    root: DebianRoot,
) -> None:
    root.ok(INSTALL)
    good = os.readlink(root.file("/opt/outpost/venv"))
    # No systemd in the chroot: the broken release passes its checks and is not started.
    root.ok(f"{INSTALL} --from {BROKEN}")
    root.ok(f"{INSTALL} --rollback")
    assert os.readlink(root.file("/opt/outpost/venv")) == good
    root.file("/root/device.py").write_text(DEVICE)

    booted = root.boot(BOOTED, timeout_s=300)
    assert booted.returncode == 0, booted.output
    for step in (
        "booted",
        "nothing to do",
        "path unit",
        "came through mosquitto.service",
        "rolled back",
        "ok: watchdog",
        "uninstalled",
    ):
        assert step in booted.output, booted.output
    assert "did not start on /opt/outpost/releases/" in booted.output, booted.output
    figures = booted.output.index("watchdog figures:")
    print(booted.output[figures : booted.output.index("ok: watchdog")])
