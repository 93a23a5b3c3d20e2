"""``print`` and ``logging`` inside a function become that call's ``logLines``.

Each execution carries its own buffer in a context variable, so two actions printing
at the same time on the event loop each get only their own lines. ``print`` is
injected into every app module's globals by the loader (no global ``sys.stdout``
swap); records from app loggers reach a handler on the root logger.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

MAX_LOG_LINES = 256
MAX_LINE_CHARS = 32_768
OVERFLOW_LINE = "[ERROR] Log overflow (maximum 256). Remaining log lines omitted."
_LEVELS = {
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARNING": "WARN",
    "ERROR": "ERROR",
    "CRITICAL": "ERROR",
}

_current: ContextVar[LogBuffer | None] = ContextVar("outpost_log_buffer", default=None)


class LogBuffer:
    """The log lines of one function execution (nested calls share it)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._overflowed = False

    def add(self, level: str, message: str) -> None:
        if self._overflowed:
            return
        if len(self.lines) >= MAX_LOG_LINES:
            self._overflowed = True
            self.lines.append(OVERFLOW_LINE)
            return
        if len(message) > MAX_LINE_CHARS:
            message = message[:MAX_LINE_CHARS] + " (truncated due to length)"
        self.lines.append(f"[{level}] {message}")


@contextmanager
def capture(buffer: LogBuffer) -> Iterator[LogBuffer]:
    """Route this context's ``print`` and app logging into ``buffer``."""
    token = _current.set(buffer)
    try:
        yield buffer
    finally:
        _current.reset(token)


def app_print(
    *args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
) -> None:
    """The ``print`` app modules see: into the log buffer during a call, else stdout."""
    buffer = _current.get()
    if buffer is None or file is not None:
        builtins.print(*args, sep=sep, end=end, file=file, flush=flush)
        return
    buffer.add("LOG", (" " if sep is None else sep).join(str(a) for a in args))


class CaptureHandler(logging.Handler):
    """Copies app log records into the running call's buffer."""

    def emit(self, record: logging.LogRecord) -> None:
        buffer = _current.get()
        if buffer is None or record.name.startswith("gateway"):
            return
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not fail the call
            message = str(record.msg)
        buffer.add(_LEVELS.get(record.levelname, record.levelname), message)


_handler = CaptureHandler()
_installs = 0


def install(app_package: str) -> None:
    """Attach the capture handler (once) and let the app's loggers emit every level."""
    global _installs
    if _installs == 0:
        logging.getLogger().addHandler(_handler)
    _installs += 1
    logging.getLogger(app_package).setLevel(logging.DEBUG)


def uninstall() -> None:
    global _installs
    _installs = max(0, _installs - 1)
    if _installs == 0:
        logging.getLogger().removeHandler(_handler)
