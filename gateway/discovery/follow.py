"""``Discovery``: the announcement kept in step with the gateway and the machine.

What is announced can change while the gateway runs: a Pi that starts before DHCP has
given it an address has nothing to announce yet, an address can change on a renewal,
and an ``outpost dev`` reload can open the HTTP actions' port. So the plan is asked for
again every ``discovery_check_interval_s`` (listing the interfaces is a few syscalls)
and after each reload; when it differs, the old announcement is withdrawn (goodbyes for the
old addresses) and the new one made. A plan that could not be announced is not retried
until it changes, so a lasting failure is one warning, not one a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from gateway.discovery.announce import Announcer, Plan, Unannounced, start_announcing

log = logging.getLogger("gateway.discovery")


PlanFn = Callable[[], Plan | Unannounced]
StartFn = Callable[[Plan], Awaitable[Announcer | None]]


class Discovery:
    """Announces ``plan()`` and follows its changes until ``close`` (idempotent)."""

    def __init__(
        self,
        plan: PlanFn,
        *,
        check_interval_s: float,
        announce: StartFn = start_announcing,
    ) -> None:
        self._plan = plan
        self._interval_s = check_interval_s
        self._announce = announce
        self._current: Plan | Unannounced | None = None
        self._announcer: Announcer | None = None
        self._watching: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # a reload and the periodic check may meet
        self._closed = False

    async def start(self) -> None:
        """Announce what there is now, then check for changes in a task."""
        await self.refresh()
        self._watching = asyncio.create_task(self._watch(), name="outpost-discovery-watch")

    async def refresh(self) -> None:
        """Announce anew if the plan changed since the last time."""
        async with self._lock:
            try:
                plan = self._plan()
            except ValueError as exc:  # e.g. a blank host name to announce under
                plan = Unannounced(str(exc), logging.WARNING)
            if self._closed or plan == self._current:
                return
            await self._withdraw()
            self._current = plan
            if isinstance(plan, Unannounced):
                log.log(plan.level, "not announced on the LAN: %s", plan.reason)
                return
            self._announcer = await self._announce(plan)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.refresh()

    async def _withdraw(self) -> None:
        announcer, self._announcer = self._announcer, None
        if announcer is not None:
            await announcer.close()

    async def close(self) -> None:
        """Stop following, withdraw the announcement."""
        if self._closed:
            return
        self._closed = True
        if self._watching is not None:
            self._watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watching
        async with self._lock:
            await self._withdraw()
