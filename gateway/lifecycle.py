"""``Lifecycle``: named steps started in order, stopped in reverse, within a bound.

The one rule every owner of a process part follows (STYLE practices 2, 3 and 6):

- A part is started by ``await life.start(name, begin, stop)``. ``begin`` either
  starts the whole part or raises having started nothing (a step is atomic); only
  once it returns is ``stop`` recorded.
- When step *k* fails (or the start is cancelled while it runs), steps *k-1 .. 0*
  are stopped in reverse, and ``start`` raises one ``StartError`` whose text is one
  line, ``cannot start: <step>: <reason>``, with the step's error as ``__cause__``.
  A ``StartError`` from a nested lifecycle (the gateway's steps inside the process
  owner's) passes through unchanged: it already names the innermost step. A
  cancellation is re-raised as such after the unwinding.
- ``stop`` is idempotent (a second caller waits for the first) and runs the recorded
  stops in reverse. The whole of it is bounded by ``stop_budget_s``: a step may use
  three quarters of what is left of the budget, so the steps after it (the store,
  last) always keep a quarter even if one step hangs. A step past its bound is
  cancelled, logged with its name, and left behind; a step whose stop raises is
  logged; either way the unwinding goes on.
- A lifecycle stopped from inside another's step (``Gateway.close`` as the process
  owner's "gateway" step) takes that step's deadline as its own, through a context
  variable, so nesting never stretches the outer bound.

Tests and diagnostics see every step through ``hook(phase, name)``, awaited before a
step starts (``"start"``) and before it stops (``"stop"``): raising there fails that
step exactly as its own error would, so every step's failure path can be tested
without reaching into private functions.

This module is the lowest layer of process life: it imports nothing from the rest of
``gateway`` but the error tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from gateway.errors import OutpostError, StartError

log = logging.getLogger("gateway.lifecycle")

T = TypeVar("T")
Phase = Literal["start", "stop"]
StepHook = Callable[[Phase, str], Awaitable[None]]
StopFn = Callable[[], Awaitable[None] | None]

# Share of the time left that one step's stop may use; the rest is kept for the steps
# that stop after it (the writer's drain and the store's close come last).
STEP_SHARE = 0.75
# How long a stop that ignores its cancellation is waited for before it is left behind.
CANCEL_GRACE_S = 0.5

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "outpost_stop_deadline", default=None
)


@dataclass(frozen=True)
class _Started:
    name: str
    stop: StopFn | None


class Lifecycle:
    """The started steps of one owner; ``stop`` undoes them in reverse."""

    def __init__(self, owner: str, *, stop_budget_s: float, hook: StepHook | None = None) -> None:
        self.owner = owner
        self.stop_budget_s = stop_budget_s
        self._hook = hook
        self._started: list[_Started] = []
        self._stopping = False
        self._stopped = asyncio.Event()

    @property
    def steps(self) -> tuple[str, ...]:
        """Names of the steps started and not yet stopped, in start order."""
        return tuple(step.name for step in self._started)

    async def start(
        self,
        name: str,
        begin: Callable[[], Awaitable[T]],
        stop: Callable[[T], Awaitable[None] | None] | None = None,
    ) -> T:
        """Run step ``name``; on failure stop every earlier step and raise ``StartError``."""
        if self._stopping:
            raise StartError(name, f"{self.owner} is stopping")
        log.debug("%s: starting %s", self.owner, name)
        try:
            if self._hook is not None:
                await self._hook("start", name)
            value = await begin()
        except BaseException as exc:
            await self._unwind(name, exc)
            if isinstance(exc, StartError) or not isinstance(exc, Exception):
                raise  # already names its step, or a cancellation / interrupt
            raise StartError(name, describe(exc)) from exc
        self._started.append(_Started(name, None if stop is None else _bind(stop, value)))
        return value

    async def stop(self) -> None:
        """Stop every started step in reverse, within the budget. Idempotent."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        try:
            await self._stop_all()
        finally:
            self._stopped.set()

    async def _unwind(self, name: str, exc: BaseException) -> None:
        log.debug("%s: %s failed (%s); stopping %s", self.owner, name, describe(exc), self.steps)
        await self.stop()

    async def _stop_all(self) -> None:
        deadline = time.monotonic() + self.stop_budget_s
        outer = _deadline.get()
        if outer is not None:
            deadline = min(deadline, outer)
        while self._started:
            step = self._started.pop()
            last = not self._started
            await self._stop_one(step, _step_deadline(deadline, last=last))

    async def _stop_one(self, step: _Started, deadline: float) -> None:
        context = contextvars.copy_context()
        context.run(_deadline.set, deadline)
        task = asyncio.create_task(
            self._run_stop(step), name=f"outpost-stop-{step.name}", context=context
        )
        timeout = max(0.0, deadline - time.monotonic())
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if task not in done:
            await _abandon(task)
            log.error(
                "%s: stopping %s took longer than %.1f s; left behind",
                self.owner,
                step.name,
                timeout,
            )
            return
        if task.cancelled():  # its own await was cancelled under it: nothing to report
            log.error("%s: stopping %s was cancelled", self.owner, step.name)
            return
        error = task.exception()
        if error is not None:
            log.error("%s: stopping %s failed: %s", self.owner, step.name, error, exc_info=error)

    async def _run_stop(self, step: _Started) -> None:
        started = time.monotonic()
        if self._hook is not None:
            await self._hook("stop", step.name)
        if step.stop is not None:
            result = step.stop()
            if inspect.isawaitable(result):
                await result
        elapsed_ms = (time.monotonic() - started) * 1000
        log.debug("%s: stopped %s in %.1f ms", self.owner, step.name, elapsed_ms)


async def cancel_task(task: asyncio.Task[None] | None) -> None:
    """The stop of a step whose part is one task (or none): cancel it, await its end."""
    await cancel_tasks([task])


async def cancel_tasks(tasks: Iterable[asyncio.Task[Any] | None]) -> None:
    """Cancel every task (None skipped) at once, then await each one's end."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def describe(exc: BaseException) -> str:
    """One line saying what went wrong: ours as written, an ``OSError`` as the system
    says it with the path, anything else (a bug) with its type so it can be found."""
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, OutpostError):
        text = exc.strerror if exc.filename is None else f"{exc.strerror}: {exc.filename}"
    elif isinstance(exc, OutpostError):
        text = str(exc) or type(exc).__name__
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _bind(stop: Callable[[T], Awaitable[None] | None], value: T) -> StopFn:
    return lambda: stop(value)


def _step_deadline(deadline: float, *, last: bool) -> float:
    """The last step may use all that is left; any other, ``STEP_SHARE`` of it."""
    if last:
        return deadline
    now = time.monotonic()
    return now + max(0.0, deadline - now) * STEP_SHARE


async def _abandon(task: asyncio.Task[None]) -> None:
    """Cancel a stop past its bound and give it a moment to finish unwinding."""
    task.cancel()
    await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved: a late failure is part of the timeout logged
