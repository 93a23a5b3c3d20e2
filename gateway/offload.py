"""Parsing big JSON without stalling the event loop or keeping its bytes afterwards.

Shared by the HTTP API (request bodies) and the sync socket (text frames): a few
14 MB documents parsed on the loop stalled ``/health`` for seconds. Two things make
moving the work to a thread actually help:

- ``decode_yielding`` gives the same values as ``json.loads`` but routes every object
  and number through a Python function. The C scanner never releases the GIL by
  itself, so a 14 MB parse on a thread would still stall the loop for its whole
  length (~0.3 s here); a Python call is a point where the loop gets its turn (worst
  stall measured: 20-40 ms). Strings have no hook: a document of millions of tiny
  strings still parses in one piece (~0.2 s for 14 MB).
- ``run_off_loop`` runs one ``Job`` at a time per semaphore (bounded CPU and memory)
  and leaves nothing on the worker thread: a pool worker keeps its last job's
  arguments, result or exception until it runs the next one (measured: a dropped
  8 MB result stayed allocated).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")

BIG_JSON_BYTES = 256 * 1024
"""From this size on, a document is parsed (and its values converted) off the loop."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _same(value: dict[str, Any]) -> dict[str, Any]:
    return value


def _to_float(text: str) -> float:
    return float(text)


def _to_int(text: str) -> int:
    return int(text)


decode = json.JSONDecoder(parse_constant=_reject_constant).decode
"""Strict JSON (no NaN or Infinity), all in C: for small documents."""

decode_yielding = json.JSONDecoder(
    parse_constant=_reject_constant, object_hook=_same, parse_float=_to_float, parse_int=_to_int
).decode
"""The same values as ``decode``, with a point for the loop at every object and number."""


async def run_off_loop(
    slots: asyncio.Semaphore,
    fn: Callable[..., T],
    *args: Any,
    quiet: tuple[type[Exception], ...] = (),
) -> T:
    """``fn(*args)`` on a worker thread, one per free slot of ``slots``.

    An exception of a ``quiet`` type (a refusal, not a bug) comes back without its
    traceback and context, whose frames and ``JSONDecodeError.doc`` hold the whole
    document; any other keeps its traceback for the log.
    """
    job: Job[T] = Job(fn, args, quiet)
    async with slots:
        await asyncio.to_thread(job.run)
    return job.outcome()


class Job(Generic[T]):
    """One call on a worker thread that hands its outcome over once and keeps nothing."""

    __slots__ = ("_call", "_quiet", "_result", "_error")

    def __init__(
        self, fn: Callable[..., T], args: tuple[Any, ...], quiet: tuple[type[Exception], ...]
    ) -> None:
        self._call: tuple[Callable[..., T], tuple[Any, ...]] | None = (fn, args)
        self._quiet = quiet
        self._result: T | None = None
        self._error: Exception | None = None

    def run(self) -> None:
        assert self._call is not None
        fn, args = self._call
        self._call = None
        try:
            self._result = fn(*args)
        except Exception as exc:
            if isinstance(exc, self._quiet):
                exc.__context__ = None  # e.g. a UnicodeDecodeError holding the whole body
                exc = exc.with_traceback(None)
            self._error = exc

    def outcome(self) -> T:
        result, error = self._result, self._error
        self._result = self._error = None
        if error is not None:
            raise error
        return cast(T, result)
