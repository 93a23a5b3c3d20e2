"""``deploy/install.sh`` and its Mosquitto sync pass ``shellcheck`` as POSIX sh (what
``sudo sh deploy/install.sh`` runs them with: dash on Debian), warnings included."""

from __future__ import annotations

import subprocess
from pathlib import Path

from debian import ensure_programs

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SCRIPTS = [DEPLOY / "install.sh", DEPLOY / "outpost-mosquitto-sync"]


def test_the_scripts_pass_shellcheck() -> None:
    found = ensure_programs(["shellcheck"], ["shellcheck"], "linting deploy/install.sh")
    done = subprocess.run(
        [found["shellcheck"], "--shell=sh", "--severity=style", *map(str, SCRIPTS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_scripts_are_executable() -> None:
    for script in SCRIPTS:
        assert script.stat().st_mode & 0o111, script
