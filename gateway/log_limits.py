"""A log that fits an SD card: repeated warnings and errors are rate-limited.

A flood is one template repeated (asyncio's ``socket.accept() out of system
resource`` thousands of times a second, one traceback each; one failing client in a
loop), so the filter counts records per template: the logger, the level and the
message's first line with its numbers blanked (asyncio puts the socket's fd into its
message). The first ``burst`` records of a template per ``interval_s`` pass; the rest
are counted, and the first record of the template after the interval carries one
line before it saying how many similar lines were suppressed. Debug and info records
are not limited: they are off in production or already one per event.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

DEFAULT_BURST: Final = 10
DEFAULT_INTERVAL_S: Final = 60.0
# Templates remembered at once; past it, windows that ended are forgotten.
_MAX_TEMPLATES: Final = 1000
_DIGITS: Final = re.compile(r"\d+")


@dataclass
class _Window:
    started: float
    passed: int = 0
    suppressed: int = 0


class RateLimitFilter(logging.Filter):
    """Lets the first ``burst`` WARNING+ records of a template through per interval."""

    def __init__(
        self,
        *,
        burst: int = DEFAULT_BURST,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.interval_s = interval_s
        self._clock = clock
        self._windows: dict[tuple[str, int, str], _Window] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        now = self._clock()
        key = (record.name, record.levelno, _template(record))
        window = self._windows.get(key)
        if window is None or now - window.started >= self.interval_s:
            suppressed = window.suppressed if window is not None else 0
            self._start(key, now)
            if suppressed:
                _prefix_summary(record, suppressed, self.interval_s)
            return True
        if window.passed < self.burst:
            window.passed += 1
            return True
        window.suppressed += 1
        return False

    def _start(self, key: tuple[str, int, str], now: float) -> None:
        if len(self._windows) >= _MAX_TEMPLATES:
            self._windows = {
                k: w for k, w in self._windows.items() if now - w.started < self.interval_s
            }
        self._windows[key] = _Window(started=now, passed=1)


def _template(record: logging.LogRecord) -> str:
    first_line = str(record.msg).split("\n", 1)[0][:200]
    return _DIGITS.sub("#", first_line)


def _prefix_summary(record: logging.LogRecord, suppressed: int, interval_s: float) -> None:
    """One more line on the record that opens a new window: what the last one dropped."""
    try:
        message = record.getMessage()
    except Exception:
        message = str(record.msg)
    record.msg = (
        f"(suppressed {suppressed} similar lines in the last {interval_s:.0f} s)\n{message}"
    )
    record.args = None
