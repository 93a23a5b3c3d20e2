"""End-to-end tests: soak tiers are skipped unless selected.

A test marked ``soak`` under this directory runs only when asked for, with
``pytest -m soak`` (any ``-m`` expression naming ``soak``) or ``OUTPOST_SOAK=1``;
a plain ``pytest`` reports it as skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def soak_selected(config: pytest.Config) -> bool:
    if os.environ.get("OUTPOST_SOAK", "") not in ("", "0"):
        return True
    return "soak" in (config.getoption("markexpr", "") or "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if soak_selected(config):
        return
    skip = pytest.mark.skip(reason="soak tier: select it with `pytest -m soak` or OUTPOST_SOAK=1")
    for item in items:
        if item.get_closest_marker("soak") is not None and HERE in item.path.parents:
            item.add_marker(skip)
