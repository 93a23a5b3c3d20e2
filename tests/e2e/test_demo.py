"""The demo a newcomer runs (``scripts/demo``): the whole loop, end to end, once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from debian import ensure_programs

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_walks_the_whole_loop(tmp_path: Path) -> None:
    ensure_programs(["mosquitto"], ["mosquitto"], "the demo")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.greenhouse.demo",
            "--once",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    assert "gh-2 received on greenhouse/gh-2/config: {'device': 'gh-2'" in out
    assert out.count("live readings:stats gh-1: count") >= 2  # the live query moved
    made, covered = (
        out.split("readings made ")[1].split("\n")[0].split(", covered by outpost/ack/<device> ")
    )
    # A reading or two per sensor may be in flight when the line is printed.
    assert 0 < int(covered) <= int(made) <= int(covered) + 6
    assert (
        "gh-2 received over MQTT: {'device': 'gh-2', 'zone': 'north', 'max_celsius': 26.5}" in out
    )
    assert "The gateway: http://127.0.0.1:" in out
    assert "/dashboard/ (log in with the key in" in out
