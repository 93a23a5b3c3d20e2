"""A replication link's state and the waits between its attempts (uplink and downlink).

States: "starting" (no answer yet), "up", "down" (unreachable or refusing: retried with
exponential backoff and full jitter between ``backoff_min_s`` and ``backoff_max_s``) and
"unauthorized" (retried every ``unauthorized_retry_s``: someone may register the gateway
meanwhile). One line when the link goes down or is refused, one when it is back: an
outage of a week is two lines, not a million.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger("gateway.replication")


class LinkState:
    """What ``outpost status`` shows of one link, and how long it waits before retrying.
    ``what`` prefixes its log lines ("" for the uplink, "downlink: ")."""

    def __init__(
        self,
        what: str,
        *,
        backoff_min_s: float,
        backoff_max_s: float,
        unauthorized_retry_s: float,
        jitter: Callable[[], float],
    ) -> None:
        self._what = what
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self._unauthorized_retry_s = unauthorized_retry_s
        self._jitter = jitter
        self._state = "starting"
        self.since_ms = time.time() * 1000  # when ``state`` last changed (wall ms)

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        if value != self._state:
            self._state = value
            self.since_ms = time.time() * 1000

    def up(self, catching_up: str) -> None:
        """An answer came: one info line if the link was down or refused."""
        if self._state != "up":
            if self._state in ("down", "unauthorized"):
                log.info("%supstream reachable again; %s", self._what, catching_up)
            self.state = "up"

    async def offline(self, reason: object, failures: int, level: int = logging.WARNING) -> None:
        """No answer (``failures`` in a row): a line when the link goes down, then the
        backoff's wait."""
        if self._state != "down":
            log.log(
                level,
                "%supstream unreachable or refusing (%s); retrying with backoff",
                self._what,
                reason,
            )
            self.state = "down"
        else:
            log.debug("%supstream still unreachable (%s)", self._what, reason)
        low, high = self.backoff_min_s, self.backoff_max_s
        ceiling = min(high, low * 2 ** min(failures - 1, 30))
        await asyncio.sleep(max(low, ceiling * self._jitter()))

    async def unauthorized(self, explanation: str) -> None:
        """Refused for its key: ``explanation`` logged once, then the fixed wait."""
        if self._state != "unauthorized":
            log.error("%s; retrying every %.0f s", explanation, self._unauthorized_retry_s)
            self.state = "unauthorized"
        await asyncio.sleep(self._unauthorized_retry_s)

    async def failed(self) -> None:
        """A bug or a store error: logged with its traceback, then the longest wait."""
        log.exception(
            "the %s failed; starting it again in %.0f s",
            self._what.rstrip(": ") or "uplink",
            self.backoff_max_s,
        )
        self.state = "down"
        await asyncio.sleep(self.backoff_max_s)
