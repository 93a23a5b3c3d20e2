"""Numbers from ``/proc`` files (Linux): what ``/metrics`` and the dashboard read."""

from __future__ import annotations

from pathlib import Path


def proc_field(path: Path, name: str) -> float | None:
    """The first number after ``name`` in a /proc file (None where there is none)."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith(name):
                return float(line.split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return None
