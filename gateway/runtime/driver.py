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
    pure-Python busy loop and a long query stop. The exception is only ever delivered
    while that thread is inside the armed region; leaving the region clears any
    pending one.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: dict[int, tuple[float, Callable[[], None] | None]] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._wake_at: float | None = None
        self.aborts = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="outpost-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
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
        with self._cond:
            self._armed[ident] = (deadline, interrupt)
            # Wake the watchdog only if it would sleep past this deadline: back-to-back
            # calls then cost no thread switch each (it wakes about once per budget).
            if self._wake_at is None or deadline < self._wake_at:
                self._cond.notify()
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
        # An abort can land while disarming; retry until the entry is gone for sure.
        while True:
            try:
                with self._cond:
                    self._armed.pop(ident, None)
                    _set_async_exc(ident, None)
                return
            except HandlerAborted:
                continue

    def _main(self) -> None:
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                soonest = None
                for ident, (deadline, interrupt) in list(self._armed.items()):
                    if deadline <= now:
                        self._abort(ident, interrupt)
                        # Re-fire later if a bare ``except:`` swallows the first one.
                        self._armed[ident] = (now + 0.05, interrupt)
                        deadline = now + 0.05
                    soonest = deadline if soonest is None else min(soonest, deadline)
                self._wake_at = soonest
                self._cond.wait(None if soonest is None else max(0.0, soonest - now))
                self._wake_at = None

    def _abort(self, ident: int, interrupt: Callable[[], None] | None) -> None:
        self.aborts += 1
        _set_async_exc(ident, HandlerAborted)
        if interrupt is not None:
            interrupt()


def _set_async_exc(ident: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc) if exc is not None else None
    )
