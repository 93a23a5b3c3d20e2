"""Per-device message counters: when each device last sent, what, and how often.

The bridge records every message it receives (retained ones excepted) on the event loop;
the dashboard reads the figures. Memory is bounded by the devices seen (the ACL ties a
topic's ``{device}`` to a registered username) times ``WINDOW_S`` one-second buckets.
Nothing is persisted: the counters start at zero with the process.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

WINDOW_S: Final = 60  # the rate's window: a minute, in one-second buckets
MAX_DEVICES: Final = 10_000  # past this, new devices are counted in no row (never unbounded)


@dataclass
class _Device:
    messages: int = 0
    last_ms: float = 0.0
    last_topic: str = ""
    last_bytes: int = 0
    buckets: deque[list[int]] = field(default_factory=deque)  # [second, count]


class DeviceActivity:
    """What each device sent since the process started."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._devices: dict[str, _Device] = {}

    def record(self, device: str, topic: str, size: int, received_ms: float) -> None:
        entry = self._devices.get(device)
        if entry is None:
            if len(self._devices) >= MAX_DEVICES:
                return
            entry = self._devices[device] = _Device()
        entry.messages += 1
        entry.last_ms, entry.last_topic, entry.last_bytes = received_ms, topic, size
        second = int(self._clock())
        buckets = entry.buckets
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += 1
        else:
            buckets.append([second, 1])
        self._expire(buckets, second)

    def devices(self) -> dict[str, dict[str, Any]]:
        """Per device: messages, lastMessageMs, lastTopic, lastBytes, perMinute."""
        now = int(self._clock())
        rows = {}
        for name, entry in self._devices.items():
            self._expire(entry.buckets, now)
            rows[name] = {
                "messages": float(entry.messages),
                "lastMessageMs": entry.last_ms,
                "lastTopic": entry.last_topic,
                "lastBytes": float(entry.last_bytes),
                "perMinute": float(sum(count for _, count in entry.buckets)) * 60.0 / WINDOW_S,
            }
        return rows

    @staticmethod
    def _expire(buckets: deque[list[int]], now: int) -> None:
        while buckets and buckets[0][0] <= now - WINDOW_S:
            buckets.popleft()
