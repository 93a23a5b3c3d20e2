"""The ``outpost`` command as a user runs it (a subprocess of the installed script)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GREENHOUSE = Path(__file__).resolve().parent.parent / "examples" / "greenhouse"
OUTPOST = Path(sys.executable).parent / "outpost"


def test_check_lists_the_example_apps_functions() -> None:
    done = subprocess.run(
        [OUTPOST, "check", GREENHOUSE], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "mutation readings:ingest" in done.stdout.replace("  ", " ").replace("  ", " ")
    assert "internal" in done.stdout and "3 tables" in done.stdout


def test_check_names_file_and_line_of_a_broken_module(make_app) -> None:
    app = make_app(bad="def f(:\n    pass\n")
    done = subprocess.run([OUTPOST, "check", app], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"{app}/convex/bad.py:1: SyntaxError" in done.stderr
    assert "Traceback" not in done.stderr
