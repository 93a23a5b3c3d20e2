"""Debian packages the tests need (chromium, node and npm, mosquitto, faketime), installed
when missing.

A clean CI machine has nothing installed by hand, so a test that needs a program from
Debian installs it itself when it runs as root (once per machine, under a lock, since
parallel runs may race). Otherwise it fails and says how to install it: a missing
program never skips a test.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

APT_DEADLINE_S = 900.0


def _apt_get(*args: str) -> None:
    """Run apt-get non-interactively; waits for a dpkg lock someone else holds."""
    cmd = ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=300", *args]
    done = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=APT_DEADLINE_S,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        pytest.fail(f"{' '.join(cmd)} exited {done.returncode}:\n{tail}", pytrace=False)


def ensure_programs(programs: list[str], packages: list[str], why: str) -> dict[str, str]:
    """Paths of ``programs``; as root on Debian, ``packages`` are installed if one is missing."""
    found = {name: shutil.which(name) for name in programs}
    if all(found.values()):
        return {name: path for name, path in found.items() if path is not None}
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        missing = ", ".join(name for name, path in found.items() if path is None)
        pytest.fail(
            f"{why} needs {missing}, which is not installed: run `sudo apt-get install "
            f"{' '.join(packages)}` (as root on Debian the tests install it themselves)",
            pytrace=False,
        )
    lock_path = Path(tempfile.gettempdir()) / "outpost-tests-apt.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be installing right now
        if not all(shutil.which(name) for name in programs):
            _apt_get("update")
            # No recommended extras: headless tests need none (udev, upower, mesa...).
            _apt_get("install", "-y", "--no-install-recommends", *packages)
    paths = {name: shutil.which(name) for name in programs}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        pytest.fail(f"apt-get install {' '.join(packages)} succeeded but {missing} are not on PATH")
    return {name: path for name, path in paths.items() if path is not None}
