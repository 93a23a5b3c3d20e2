"""``Lifecycle`` on its own: steps start in order and stop in reverse, a failed step
unwinds the ones before it, the stop is idempotent and bounded, nesting keeps the bound."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from gateway.errors import AppLoadError, StartError
from gateway.lifecycle import Lifecycle, Phase, describe


class Parts:
    """Records what each step did, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def begin(self, name: str, value: object = None):
        async def start() -> object:
            self.events.append(f"+{name}")
            return value

        return start

    def end(self, name: str):
        async def stop(value: object) -> None:
            self.events.append(f"-{name}")

        return stop


async def test_steps_stop_in_reverse_and_stop_is_idempotent() -> None:
    parts, life = Parts(), Lifecycle("t", stop_budget_s=5)
    for name in ("a", "b", "c"):
        await life.start(name, parts.begin(name), parts.end(name))
    assert life.steps == ("a", "b", "c")
    await life.stop()
    await life.stop()
    assert parts.events == ["+a", "+b", "+c", "-c", "-b", "-a"]
    assert life.steps == ()


async def test_a_failed_step_unwinds_the_earlier_ones_and_names_itself() -> None:
    parts, life = Parts(), Lifecycle("t", stop_budget_s=5)
    await life.start("a", parts.begin("a"), parts.end("a"))
    await life.start("b", parts.begin("b"), parts.end("b"))

    async def broken() -> None:
        raise AppLoadError("convex/x.py:3: NameError: name 'y' is not defined")

    with pytest.raises(StartError) as caught:
        await life.start("c", broken, parts.end("c"))
    assert str(caught.value) == "cannot start: c: convex/x.py:3: NameError: name 'y' is not defined"
    assert caught.value.step == "c"
    assert isinstance(caught.value.__cause__, AppLoadError)
    assert parts.events == ["+a", "+b", "-b", "-a"]
    with pytest.raises(StartError, match="is stopping"):  # a failed lifecycle starts nothing more
        await life.start("d", parts.begin("d"))


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (FileExistsError(17, "File exists", "/d/store.db"), "File exists: /d/store.db"),
        (PermissionError(13, "Permission denied"), "Permission denied"),
        (ZeroDivisionError("division by zero"), "ZeroDivisionError: division by zero"),
        (RuntimeError(), "RuntimeError"),
        (AppLoadError("first\n  second\n"), "first; second"),
    ],
)
def test_the_reason_is_one_line(error: BaseException, text: str) -> None:
    assert describe(error) == text


async def test_a_nested_start_error_passes_through_and_a_cancel_stays_a_cancel() -> None:
    parts, outer = Parts(), Lifecycle("outer", stop_budget_s=5)
    await outer.start("http", parts.begin("http"), parts.end("http"))

    async def inner_start() -> None:
        inner = Lifecycle("inner", stop_budget_s=5)
        await inner.start("store", parts.begin("store"), parts.end("store"))
        await inner.start("scheduler", _raises(OSError(5, "Input/output error")))

    with pytest.raises(StartError) as caught:
        await outer.start("gateway", inner_start)
    assert str(caught.value) == "cannot start: scheduler: Input/output error"
    assert parts.events == ["+http", "+store", "-store", "-http"]

    parts, life = Parts(), Lifecycle("t", stop_budget_s=5)
    await life.start("a", parts.begin("a"), parts.end("a"))
    entered = asyncio.Event()

    async def slow() -> None:
        entered.set()
        await asyncio.Event().wait()

    starting = asyncio.create_task(life.start("slow", slow))
    await entered.wait()
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert parts.events == ["+a", "-a"]


async def test_a_failing_stop_is_logged_and_the_unwinding_goes_on(caplog) -> None:
    parts, life = Parts(), Lifecycle("t", stop_budget_s=5)
    await life.start("a", parts.begin("a"), parts.end("a"))
    await life.start("b", parts.begin("b"), _stop_raises(RuntimeError("socket gone")))
    await life.start("c", parts.begin("c"), parts.end("c"))
    with caplog.at_level(logging.ERROR, logger="gateway.lifecycle"):
        await life.stop()
    assert parts.events == ["+a", "+b", "+c", "-c", "-a"]
    assert "t: stopping b failed: socket gone" in caplog.text


async def test_a_stop_cancelled_under_it_is_logged_and_the_unwinding_goes_on(caplog) -> None:
    parts, life = Parts(), Lifecycle("t", stop_budget_s=5)
    await life.start("a", parts.begin("a"), parts.end("a"))
    await life.start("b", parts.begin("b"), _stop_raises(asyncio.CancelledError()))
    with caplog.at_level(logging.ERROR, logger="gateway.lifecycle"):
        await life.stop()
    assert parts.events == ["+a", "+b", "-a"]
    assert "t: stopping b was cancelled" in caplog.text


async def test_a_hung_stop_is_cut_and_the_last_step_still_stops(caplog) -> None:
    parts, life = Parts(), Lifecycle("t", stop_budget_s=0.6)
    await life.start("store", parts.begin("store"), parts.end("store"))
    await life.start("hung", parts.begin("hung"), _stop_hangs)
    await life.start("http", parts.begin("http"), parts.end("http"))
    began = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="gateway.lifecycle"):
        await life.stop()
    elapsed = time.monotonic() - began
    assert elapsed < 0.6 + 0.3, elapsed
    assert parts.events[-2:] == ["-http", "-store"]  # the store kept its share of the budget
    assert "t: stopping hung took longer than" in caplog.text


async def test_a_second_stop_waits_for_the_first() -> None:
    life, release = Lifecycle("t", stop_budget_s=5), asyncio.Event()
    stopped: list[str] = []

    async def slow_stop(_: object) -> None:
        await release.wait()
        stopped.append("a")

    await life.start("a", _returns(None), slow_stop)
    first = asyncio.create_task(life.stop())
    second = asyncio.create_task(life.stop())
    await asyncio.sleep(0)
    assert not second.done()
    release.set()
    await asyncio.gather(first, second)
    assert stopped == ["a"]


async def test_a_nested_stop_keeps_within_the_outer_bound() -> None:
    """The inner lifecycle's own budget is 30 s, but it runs inside the outer's
    0.5 s: its hung step is cut in time for the outer stop to return."""
    outer, inner = Lifecycle("outer", stop_budget_s=0.5), Lifecycle("inner", stop_budget_s=30)
    await inner.start("hung", _returns(None), _stop_hangs)
    await outer.start("inner", _returns(inner), Lifecycle.stop)
    began = time.monotonic()
    await outer.stop()
    assert time.monotonic() - began < 0.5 + 0.3


async def test_the_hook_sees_every_step_and_can_fail_one() -> None:
    seen: list[tuple[Phase, str]] = []

    async def hook(phase: Phase, name: str) -> None:
        seen.append((phase, name))
        if (phase, name) == ("start", "c"):
            raise OSError(28, "No space left on device")

    life = Lifecycle("t", stop_budget_s=5, hook=hook)
    await life.start("a", _returns(1))
    await life.start("b", _returns(2))
    with pytest.raises(StartError, match="^cannot start: c: No space left on device$"):
        await life.start("c", _returns(3))
    assert seen == [("start", "a"), ("start", "b"), ("start", "c"), ("stop", "b"), ("stop", "a")]


def _returns(value: object):
    async def start() -> object:
        return value

    return start


def _raises(error: BaseException):
    async def start() -> None:
        raise error

    return start


def _stop_raises(error: BaseException):
    async def stop(_: object) -> None:
        raise error

    return stop


async def _stop_hangs(_: object) -> None:
    await asyncio.Event().wait()
