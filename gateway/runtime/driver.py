"""Driving a query's or mutation's coroutine on the thread that owns its connection.

DESIGN decision 2: a function's many small reads must not each pay a hop between the
event loop and a database thread, so the whole handler runs on the database thread.
Its coroutine is stepped by hand; ``ctx`` operations complete without suspending, so
a well-behaved handler finishes in one ``send``. Anything else it awaits either
suspends (which the driver sees) or asks for the running loop, and a database thread
has none: both end as ``DeterminismError`` and the transaction rolls back.

Why no stand-in "guard loop" object: libraries build state before their first real
use of the loop (aiohttp's connector reads ``loop.get_debug()`` half-way through its
constructor), so a loop that refuses late leaves half-built objects whose ``__del__``
then fails. Having no loop at all makes them fail on their very first line.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.errors import DeterminismError, FunctionTimeoutError, HandlerAborted

_ADVICE = (
    "queries and mutations may only await ctx operations (ctx.db, ctx.run_query, "
    "ctx.run_mutation, ctx.scheduler); do network calls, sleeps and other I/O in an action"
)
# What asyncio says when code on a database thread looks for an event loop.
_NO_LOOP = ("no running event loop", "There is no current event loop")


def drive(coro: Coroutine[Any, Any, Any], describe: Callable[[], str]) -> Any:
    """Run ``coro`` to completion on this thread, refusing any real suspension."""
    try:
        awaited = coro.send(None)
    except StopIteration as done:
        return done.value
    except RuntimeError as exc:
        if any(text in str(exc) for text in _NO_LOOP):
            raise DeterminismError(f"{describe()} used the event loop; {_ADVICE}") from exc
        raise
    error = DeterminismError(f"{describe()} awaited {_what(awaited)}; {_ADVICE}")
    try:
        coro.throw(error)
    except (StopIteration, DeterminismError):
        pass
    finally:
        coro.close()
    raise error


def _what(awaited: object) -> str:
    if awaited is None:
        return "a bare suspension (asyncio.sleep(0) or a foreign awaitable)"
    if isinstance(awaited, asyncio.Future):
        return f"a {type(awaited).__name__} from another event loop (asyncio.gather, a task?)"
    return f"{type(awaited).__name__}"


class Watchdog:
    """Aborts a handler that runs past its time budget, from a thread of its own.

    It raises ``HandlerAborted`` asynchronously in the handler's thread
    (``PyThreadState_SetAsyncExc``) and interrupts its SQLite statement, so both a
    pure-Python busy loop and a long query stop.

    Safety of the asynchronous exception: the watchdog fires only while the handler's
    thread is armed, and arming state is guarded by a plain C lock (``with`` on it
    cannot be interrupted half-way, unlike a ``Condition``'s Python ``__enter__``).
    A thread that was fired at lets a still-pending abort land inside ``_disarm``, so
    it never escapes into the caller. Nothing ever calls ``SetAsyncExc(NULL)``: on
    CPython 3.11 that leaves the eval breaker set and hangs any thread running under
    a profiler or tracer.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()  # _armed and _fired
        self._wakeup = threading.Condition(threading.Lock())  # the watchdog sleeps here
        self._armed: dict[int, tuple[float, Callable[[], None] | None]] = {}
        self._fired: set[int] = set()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._wake_at: float | None = None
        self.aborts = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="outpost-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def run(
        self,
        budget_s: float,
        fn: Callable[[], Any],
        *,
        interrupt: Callable[[], None] | None,
        describe: Callable[[], str],
    ) -> Any:
        """Call ``fn`` on this thread, aborting it if it takes longer than ``budget_s``."""
        ident = threading.get_ident()
        deadline = time.monotonic() + budget_s
        with self._guard:
            self._armed[ident] = (deadline, interrupt)
        # Wake the watchdog only if it would sleep past this deadline: back-to-back
        # calls then cost no thread switch each (it wakes about once per budget).
        wake_at = self._wake_at
        if wake_at is None or deadline < wake_at:
            with self._wakeup:
                self._wakeup.notify()
        try:
            try:
                return fn()
            finally:
                self._disarm(ident)
        except HandlerAborted as exc:
            self._disarm(ident)
            raise FunctionTimeoutError(
                f"{describe()} ran longer than its {budget_s * 1000:.0f} ms budget and was "
                "aborted; a gateway serves every caller from one writer, so keep queries and "
                "mutations short (raise the budget in outpost.toml only if you must)"
            ) from exc

    def _disarm(self, ident: int) -> None:
        while True:
            try:
                with self._guard:
                    self._armed.pop(ident, None)
                    fired = ident in self._fired
                    self._fired.discard(ident)
                if fired:
                    for _ in range(2):  # a still-pending abort is delivered here
                        pass
                return
            except HandlerAborted:
                continue

    def _main(self) -> None:
        with self._wakeup:
            while not self._stopping:
                soonest = self._fire_due(time.monotonic())
                self._wake_at = soonest
                timeout = None if soonest is None else max(0.0, soonest - time.monotonic())
                self._wakeup.wait(timeout)
                self._wake_at = None

    def _fire_due(self, now: float) -> float | None:
        """Abort every handler past its deadline; returns the next deadline."""
        soonest = None
        with self._guard:
            for ident, (deadline, interrupt) in list(self._armed.items()):
                if deadline <= now:
                    self.aborts += 1
                    self._fired.add(ident)
                    _set_async_exc(ident, HandlerAborted)
                    if interrupt is not None:
                        interrupt()
                    # Fire again later if a bare ``except:`` swallows this one.
                    deadline = now + 0.05
                    self._armed[ident] = (deadline, interrupt)
                soonest = deadline if soonest is None else min(soonest, deadline)
        return soonest


def _set_async_exc(ident: int, exc: type[BaseException]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc))
