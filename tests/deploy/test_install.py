"""``deploy/install.sh`` end to end in a throwaway Debian 12 root (``debian_root_kit``).

One story, in order, because each step stands on the one before: install from a copy of
this checkout (apt from the Debian mirror, pip from PyPI), check what it made; run it
again and see nothing change; register a device and see Mosquitto's files follow; write
to the store, upgrade to a changed source and find a backup, the last good release and
the data; roll back; uninstall (data kept); purge. systemd is not PID 1 in a chroot, so
units are enabled (symlinks) but not started, and the script says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from debian_root_kit import DebianRoot, remove_root, unpack_root
from install_kit import DEVICE, DEVICE_FILE, INSTALL, SOURCE, copy_checkout

OUTPOST = "/opt/outpost/venv/bin/outpost"
# What install.sh may touch; the idempotence check compares these trees.
WATCHED = (
    "opt/outpost",
    "etc/outpost",
    "etc/mosquitto",
    "etc/systemd/system",
    "var/lib/outpost",
    "usr/local/bin",
    "etc/passwd",
    "etc/group",
    "etc/shadow",
)
AS_OUTPOST = "runuser -u outpost --"
WRITE = """
import asyncio
from gateway import Gateway

async def main():
    async with Gateway.open("/etc/outpost/app", "/var/lib/outpost") as gw:
        await gw.run_mutation("readings:add", {"device": "d1", "celsius": 21.5})
        print(len(await gw.run_query("readings:latest", {"device": "d1"})))

asyncio.run(main())
"""
# Writes one reading as the service's user and prints how many there are.
WRITE_ONE = f"cd /tmp && {AS_OUTPOST} /opt/outpost/venv/bin/python -c '{WRITE}'"

# Debian's Mosquitto on its stock config plus Outpost's drop-in, and `outpost serve` as the
# unit runs it (the service's user, its settings, the bridge's URL from mqtt.env), in a
# network and PID namespace of their own; then a device over MQTT (device.py).
LIVE = """
mkdir -p /run/mosquitto && chown mosquitto:mosquitto /run/mosquitto
mosquitto -c /etc/mosquitto/mosquitto.conf -d
set -a && . /etc/outpost/mqtt.env && set +a
cd /tmp
runuser -u outpost -- /opt/outpost/venv/bin/outpost serve /etc/outpost/app \
    --config /etc/outpost/outpost.toml --data-dir /var/lib/outpost >/tmp/serve.log 2>&1 &
/opt/outpost/venv/bin/python /root/device.py || { tail -n 30 /tmp/serve.log /var/log/mosquitto/mosquitto.log; exit 1; }
"""


@pytest.fixture
def root(tmp_path: Path) -> Iterator[DebianRoot]:
    if os.geteuid() != 0:
        pytest.fail("the install.sh test needs root (chroot, mounts): run it as root")
    made = unpack_root(tmp_path)
    try:
        copy_checkout(made.file(SOURCE))
        yield made
    finally:
        remove_root(made)


def _manifest(root: DebianRoot) -> dict[str, tuple[object, ...]]:
    """Path -> (mode, owner, group, link target or content hash) of every watched file."""
    found: dict[str, tuple[object, ...]] = {}
    for top in WATCHED:
        start = root.file(top)
        paths = [start] if not start.is_dir() else [start, *sorted(start.rglob("*"))]
        for path in paths:
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                what: object = os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                what = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                what = None
            found[str(path.relative_to(root.path))] = (info.st_mode, info.st_uid, info.st_gid, what)
    return found


def _owner_mode(root: DebianRoot, path: str) -> tuple[int, int, int]:
    info = root.file(path).lstat()
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)


def _enabled(root: DebianRoot, unit: str) -> bool:
    link = root.file(f"/etc/systemd/system/multi-user.target.wants/{unit}")
    return link.is_symlink()


def _release(root: DebianRoot, link: str) -> str:
    return os.readlink(root.file(link))


@pytest.mark.timeout(900)
def test_install_again_device_upgrade_rollback_uninstall_purge(root: DebianRoot) -> None:
    first = root.ok(INSTALL)
    assert "units installed and enabled, not started" in first

    # The user, the package, the directories with their owners and modes.
    uid, gid = root.ids("outpost"), root.ids("outpost", "group")
    assert uid is not None and gid is not None and uid < 1000  # a system user
    assert root.ok(f"{OUTPOST} --version").startswith("outpost ")
    assert _release(root, "/opt/outpost/venv").startswith("/opt/outpost/releases/")
    assert _owner_mode(root, "/etc/outpost") == (0, gid, 0o750)
    assert _owner_mode(root, "/etc/outpost/outpost.toml") == (0, gid, 0o640)
    assert _owner_mode(root, "/var/lib/outpost") == (uid, gid, 0o700)
    assert _owner_mode(root, "/etc/outpost/mqtt.env") == (0, 0, 0o600)
    assert root.file("/etc/outpost/app/convex/readings.py").is_file()
    for unit in ("outpost.service", "mosquitto.service", "outpost-mosquitto.path"):
        assert _enabled(root, unit), unit

    # Mosquitto: Debian's package, Outpost's drop-in naming files only mosquitto reads.
    mosquitto = root.ids("mosquitto")
    drop_in = root.file("/etc/mosquitto/conf.d/outpost.conf").read_text()
    assert "password_file /etc/mosquitto/outpost/passwords" in drop_in
    assert "acl_file /etc/mosquitto/outpost/acl" in drop_in
    assert _owner_mode(root, "/etc/mosquitto/outpost/passwords")[::2] == (mosquitto, 0o600)
    url = root.file("/etc/outpost/mqtt.env").read_text()
    assert url.startswith("OUTPOST_MQTT_URL=mqtt://outpost-bridge:")
    unit_drop_in = root.file("/etc/systemd/system/outpost.service.d/mosquitto.conf")
    assert "EnvironmentFile=-/etc/outpost/mqtt.env" in unit_drop_in.read_text()

    # Idempotent: the same source again changes nothing at all.
    before = _manifest(root)
    again = root.ok(INSTALL)
    assert "is installed already" in again
    assert _manifest(root) == before

    # An app that does not load (--app) is refused before it replaces anything.
    broken = root.file("/tmp/broken/convex")
    broken.mkdir(parents=True)
    (broken / "readings.py").write_text("def oops(:\n")
    refused = root.run(f"{INSTALL} --app /tmp/broken")
    assert refused.returncode == 1 and "does not load" in refused.output, refused.output
    assert "readings.py" in refused.output  # outpost check names the file
    assert _manifest(root) == before

    # A device registered as the service's user reaches Mosquitto's password file once
    # the sync runs (outpost-mosquitto.path starts it under systemd).
    add = f"{AS_OUTPOST} outpost device add sensor-1 /etc/outpost/app --json"
    added = root.ok(f"cd /tmp && {add} >{DEVICE_FILE}")
    assert json.loads(root.file(DEVICE_FILE).read_text())["username"] == "sensor-1"
    assert "outpost-mosquitto.path" in added
    root.ok("/opt/outpost/bin/outpost-mosquitto-sync")
    passwords = root.file("/etc/mosquitto/outpost/passwords").read_text()
    assert "sensor-1:$7$" in passwords and "outpost-bridge:$7$" in passwords
    assert root.file("/etc/outpost/mqtt.env").read_text() == url  # the bridge kept its password
    assert _owner_mode(root, "/var/lib/outpost/mosquitto/lock")[0] == uid

    # An upgrade: a backup of the store first, the old release kept as the last good one.
    assert root.ok(WRITE_ONE).strip() == "1"
    old = _release(root, "/opt/outpost/venv")
    # A release that does not run is refused; the running one stays, nothing changes.
    init = root.file(f"{SOURCE}/gateway/__init__.py")
    original = init.read_text()
    init.write_text(original + "\nraise RuntimeError('a broken release')\n")
    before = _manifest(root)
    failed = root.run(INSTALL)
    assert failed.returncode == 1 and "does not run" in failed.output, failed.output
    assert _manifest(root) == before
    init.write_text(original + "\n# a newer release\n")
    upgraded = root.ok(INSTALL)
    new = _release(root, "/opt/outpost/venv")
    assert new != old and _release(root, "/opt/outpost/previous") == old, upgraded
    backups = sorted(root.file("/var/lib/outpost/backups").glob("pre-upgrade-*.tar"))
    assert len(backups) == 1, upgraded
    assert _owner_mode(root, str(backups[0].relative_to(root.path)))[0] == uid
    with tarfile.open(backups[0]) as tar:
        assert "outpost.sqlite3" in tar.getnames()
    assert root.ok(WRITE_ONE).strip() == "2"

    # Roll back: the last good release is current again, the newer one kept.
    root.ok(f"{INSTALL} --rollback")
    assert _release(root, "/opt/outpost/venv") == old
    assert _release(root, "/opt/outpost/previous") == new
    assert root.ok(f"{OUTPOST} --version").startswith("outpost ")

    # Another app (--app), with MQTT routes: the ACL follows; then the whole thing runs.
    root.ok(f"{INSTALL} --app {SOURCE}/examples/greenhouse")
    assert (
        "pattern write greenhouse/%u/reading" in root.file("/etc/mosquitto/outpost/acl").read_text()
    )
    root.file("/root/device.py").write_text(DEVICE)
    live = root.run(LIVE, isolated=True, timeout_s=120)
    assert live.returncode == 0 and "reading stored: 21.5" in live.output, live.output

    # Uninstall keeps the data, the settings and the user.
    root.ok(f"{INSTALL} --uninstall")
    assert not root.file("/opt/outpost").exists()
    assert not root.file("/etc/systemd/system/outpost.service").exists()
    assert not _enabled(root, "outpost.service")
    assert not root.file("/etc/mosquitto/conf.d/outpost.conf").exists()
    assert root.file("/var/lib/outpost/outpost.sqlite3").is_file()
    assert root.file("/etc/outpost/outpost.toml").is_file()
    assert root.ids("outpost") == uid

    # Purge removes them too.
    root.ok(f"{INSTALL} --uninstall --purge")
    assert not root.file("/var/lib/outpost").exists()
    assert not root.file("/etc/outpost").exists()
    assert root.ids("outpost") is None and root.ids("outpost", "group") is None
