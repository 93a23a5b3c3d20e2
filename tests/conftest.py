"""Shared fixtures: inline apps in temp directories, a started gateway, a guard that
fails any test leaving Outpost threads or asyncio tasks behind."""

from __future__ import annotations

import asyncio
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from gateway import Gateway, Settings

REPO = Path(__file__).resolve().parent.parent
GREENHOUSE = REPO / "examples" / "greenhouse"


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    """Every thread an Outpost object started must be joined when the test ends."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while True:
        left = [
            t
            for t in threading.enumerate()
            if t not in before and t.is_alive() and t.name.startswith("outpost-")
        ]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not left, f"threads left running: {[t.name for t in left]}"


@pytest.fixture(autouse=True)
async def no_leftover_tasks() -> AsyncIterator[None]:
    """Every task a gateway started must be finished when the test's code returns."""
    yield
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not left, f"tasks left running: {[t.get_name() for t in left]}"


AppFactory = Callable[..., Path]


@pytest.fixture
def make_app(tmp_path: Path) -> AppFactory:
    """``make_app(schema=..., mod=...)``: write ``convex/<name>.py`` files, return the app dir."""
    counter = iter(range(1_000_000))

    def make(**modules: str) -> Path:
        app = tmp_path / f"app{next(counter)}"
        convex = app / "convex"
        convex.mkdir(parents=True)
        for name, source in modules.items():
            target = convex / (name.replace("__", "/") + ".py")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(source))
        return app

    return make


@pytest.fixture
async def greenhouse(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with Gateway.open(GREENHOUSE, tmp_path / "data", Settings()) as gw:
        yield gw
